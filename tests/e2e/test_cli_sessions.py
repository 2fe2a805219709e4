"""`upwell sessions list|show|rm|cleanup` on real session files and a real server."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.files import make_file
from tests.support.processes import run_upwell, serve_process
from upwell.results import ChunkMetadata
from upwell.sessions.session import UploadSession
from upwell.sessions.store import JsonSessionStore

MiB = 1024 * 1024


def tus_status(url: str, method: str = "HEAD") -> int:
    req = urllib.request.Request(url, method=method, headers={"Tus-Resumable": "1.0.0"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def create_remote(endpoint: str, length: int) -> str:
    req = urllib.request.Request(
        endpoint, method="POST", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(length)}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(r.headers["Location"])


def write_session(directory: Path, sid: str, target: str, remote: str, expires: datetime) -> None:
    import asyncio

    now = datetime.now(UTC)
    session = UploadSession(
        session_id=sid,
        file_path=directory / f"{sid}.bin",
        file_size=2 * MiB,
        file_checksum="",
        chunk_size=MiB,
        total_chunks=2,
        chunks_completed=[0],
        chunks_metadata=[ChunkMetadata(0, 0, MiB, "0" * 64, True), ChunkMetadata(1, MiB, MiB)],
        created_at=now,
        updated_at=now,
        expires_at=expires,
        status="paused",
        target=target,
        target_state={"parts": {"0": remote}, "final": None},
    )
    asyncio.run(JsonSessionStore(directory).save(session))


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serve_process(tmp_path / "srv") as (url, _proc):
        yield url


def test_list_show_rm_and_cleanup(server: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    done = make_file(tmp_path / "done.bin", MiB)
    out = run_upwell("upload", str(done), "--to", server, env={"UPLOAD_SESSION_DIR": str(sessions)})
    assert out.returncode == 0, out.stderr
    now = datetime.now(UTC)
    fresh, stale = create_remote(server, 2 * MiB), create_remote(server, 2 * MiB)
    write_session(sessions, "fresh", server, fresh, now + timedelta(hours=40))
    write_session(sessions, "stale", server, stale, now - timedelta(minutes=1))
    args = ("sessions", "--session-dir", str(sessions))

    listed = run_upwell(*args, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["session_id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert {"fresh", "stale"} < set(rows)
    assert rows["fresh"]["status"] == "paused" and rows["fresh"]["progress_percentage"] == 50.0
    assert [r["status"] for r in rows.values()].count("complete") == 1

    shown = run_upwell(*args, "show", "fresh")
    assert shown.returncode == 0 and json.loads(shown.stdout)["chunks_completed"] == 1

    cleaned = run_upwell(*args, "cleanup")
    assert cleaned.returncode == 0 and "removed 1" in cleaned.stdout
    assert tus_status(stale) == 404  # its partial upload was ended at the server
    assert tus_status(fresh) == 200

    removed = run_upwell(*args, "rm", "fresh")
    assert removed.returncode == 0, removed.stderr
    assert tus_status(fresh) == 404
    left = run_upwell(*args, "list", "--json").stdout.splitlines()
    assert [json.loads(r)["status"] for r in left] == ["complete"]


def test_unknown_or_bad_session_ids_are_clear(tmp_path: Path) -> None:
    args = ("sessions", "--session-dir", str(tmp_path / "none"))
    missing = run_upwell(*args, "show", "nope")
    assert missing.returncode == 1 and "no session 'nope'" in missing.stderr
    bad = run_upwell(*args, "rm", "../etc")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    empty = run_upwell(*args, "list")
    assert empty.returncode == 0 and "no sessions" in empty.stderr
