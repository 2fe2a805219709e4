"""Session persistence: atomic JSON files and SQLite, expiry with an injected clock."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from upwell.errors import SessionError
from upwell.results import ChunkMetadata
from upwell.sessions.manager import SessionManager
from upwell.sessions.session import UploadSession, derive_session_id
from upwell.sessions.store import JsonSessionStore, SqliteSessionStore, open_store

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_session(sid: str = "upload_abc", *, expires: datetime | None = None) -> UploadSession:
    return UploadSession(
        session_id=sid,
        file_path=Path("/data/video.mp4"),
        file_size=3000,
        file_checksum="",
        chunk_size=1000,
        total_chunks=3,
        chunks_completed=[0, 1],
        chunks_metadata=[ChunkMetadata(i, i * 1000, 1000, f"{i:064x}", i < 2) for i in range(3)],
        created_at=T0,
        updated_at=T0,
        expires_at=expires or T0 + timedelta(hours=48),
        target="http://127.0.0.1:8080/files/",
        target_state={"parts": {"0": "http://127.0.0.1:8080/files/abc"}, "final": None},
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["json", "sqlite"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / ("sessions" if request.param == "json" else "sessions.db")


async def test_round_trip_keeps_every_field(store_path: Path) -> None:
    manager = SessionManager(store_path, now=Clock())
    s = make_session()
    await manager.save_session(s)
    loaded = await manager.load_session("upload_abc")
    assert loaded == s
    assert loaded is not None and loaded.get_progress_percentage() == pytest.approx(
        66.666, rel=1e-3
    )
    assert [x.session_id for x in await manager.list_sessions()] == ["upload_abc"]
    assert await manager.delete_session("upload_abc") is True
    assert await manager.load_session("upload_abc") is None
    assert await manager.delete_session("upload_abc") is False
    await manager.close()


async def test_cleanup_removes_only_expired_sessions_and_ends_their_remote_uploads(
    store_path: Path,
) -> None:
    clock = Clock()
    ended: list[str] = []

    async def end_remote(s: UploadSession) -> None:
        ended.append(s.session_id)

    manager = SessionManager(store_path, now=clock, remote_cleanup=end_remote)
    await manager.save_session(make_session("old", expires=T0 + timedelta(hours=1)))
    await manager.save_session(make_session("new", expires=T0 + timedelta(hours=48)))
    done = make_session("done", expires=T0 + timedelta(hours=1))
    done.status = "complete"
    await manager.save_session(done)
    assert await manager.cleanup_expired_sessions() == 0
    clock.now = T0 + timedelta(hours=2)
    assert await manager.cleanup_expired_sessions() == 2
    assert ended == ["old"]  # a complete upload is kept at the target
    assert [s.session_id for s in await manager.list_sessions()] == ["new"]
    await manager.close()


async def test_session_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = JsonSessionStore(tmp_path / "s")
    for bad in ("../evil", "a/b", "", ".."):
        with pytest.raises(SessionError):
            await store.load(bad)


async def test_json_files_hold_no_secrets_and_no_temp_files_are_left(tmp_path: Path) -> None:
    store = JsonSessionStore(tmp_path / "s")
    await store.save(make_session())
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == ["upload_abc.json"]
    text = (tmp_path / "s" / "upload_abc.json").read_text()
    data = json.loads(text)
    assert data["session_id"] == "upload_abc" and data["chunks_completed"] == [0, 1]
    assert "key" not in text.lower()


async def test_a_damaged_session_file_is_a_session_error(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "upload_x.json").write_text("{not json")
    store = JsonSessionStore(tmp_path / "s")
    with pytest.raises(SessionError):
        await store.load("upload_x")
    assert await store.list() == []  # listing skips what it cannot read


def _writer(directory: str, n: int) -> None:
    import asyncio

    async def go() -> None:
        store = JsonSessionStore(Path(directory))
        for i in range(n):
            s = make_session("shared")
            s.chunks_completed = [i]
            await store.save(s)

    asyncio.run(go())


def test_two_processes_writing_one_session_never_leave_a_torn_file(tmp_path: Path) -> None:
    d = tmp_path / "s"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(d), 60)) for _ in range(2)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        f = d / "shared.json"
        if f.exists():
            json.loads(f.read_text())  # never half a file
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0, "the file never appeared while the writers ran: nothing was checked"
    assert json.loads((d / "shared.json").read_text())["chunks_completed"] == [59]
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]


def test_open_store_picks_by_suffix(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "x.db"), SqliteSessionStore)
    assert isinstance(open_store(tmp_path / "dir"), JsonSessionStore)


def test_derived_ids_change_with_the_file_and_the_target(tmp_path: Path) -> None:
    p = tmp_path / "f"
    a = derive_session_id(p, 10, 1, "http://a/files/")
    assert a == derive_session_id(p, 10, 1, "http://a/files/")
    assert a != derive_session_id(p, 11, 1, "http://a/files/")
    assert a != derive_session_id(p, 10, 2, "http://a/files/")
    assert a != derive_session_id(p, 10, 1, "http://b/files/")


async def test_cleanup_sweeps_temp_files_a_killed_save_left(tmp_path: Path) -> None:
    import os

    directory = tmp_path / "s"
    directory.mkdir()
    old = directory / ".tmp-abandoned.json"
    old.write_text("{half")
    fresh = directory / ".tmp-in-flight.json"
    fresh.write_text("{half")
    hour_ago = T0.timestamp() - 2 * 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(fresh, (T0.timestamp(), T0.timestamp()))
    manager = SessionManager(directory, now=Clock())
    await manager.cleanup_expired_sessions()
    assert not old.exists()
    assert fresh.exists()  # another process may be writing it right now
