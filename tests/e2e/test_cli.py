"""The `upwell` command as users run it: real processes, real server, real files."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.contract import STREAMING_PROGRESS_FIELDS
from tests.support.files import make_file
from tests.support.processes import UPWELL, free_port, run_upwell, serve_process

MiB = 1024 * 1024


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return bytes(r.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with serve_process(tmp_path_factory.mktemp("serve")) as (url, _proc):
        yield url


def test_upload_json_streams_ndjson_ending_with_complete(server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "video.mp4", 3 * MiB + 5, seed=1)
    out = run_upwell("upload", str(src), "--to", server, "--chunk-size", "1MiB", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) >= 3
    for line in lines:
        for key in STREAMING_PROGRESS_FIELDS:
            assert key in line
    last = lines[-1]
    assert last["stage"] == "complete" and last["percentage"] == 100.0
    assert fetch(last["file_uri"]) == src.read_bytes()


def test_several_files_upload_concurrently_in_parallel_parts(server: str, tmp_path: Path) -> None:
    files = [make_file(tmp_path / f"part{i}.bin", 2 * MiB + i * 1001, seed=i) for i in range(5)]
    out = run_upwell(
        "upload", *map(str, files), "--to", server, "--chunk-size", "512KiB", "--parallel", "3"
    )
    assert out.returncode == 0, out.stderr
    uris = dict(line.split(" -> ") for line in out.stdout.splitlines())
    assert set(uris) == {str(f) for f in files}
    for f in files:
        assert fetch(uris[str(f)]) == f.read_bytes()


def test_parallel_and_chunk_size_take_auto(server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "auto.bin", 3 * MiB + 7, seed=9)
    out = run_upwell(
        "upload", str(src), "--to", server, "--parallel", "auto", "--chunk-size", "AUTO"
    )
    assert out.returncode == 0, out.stderr
    assert fetch(out.stdout.strip().split(" -> ")[1]) == src.read_bytes()


def test_target_comes_from_upwell_target_env(server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "env.bin", 1000)
    out = run_upwell("upload", str(src), env={"UPWELL_TARGET": server})
    assert out.returncode == 0, out.stderr
    assert fetch(out.stdout.strip().split(" -> ")[1]) == src.read_bytes()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["upload", "/nonexistent/file.bin"], "no such file"),
        (["upload", "{src}", "--chunk-size", "lots"], "chunk"),
        (["upload", "{src}", "--parallel", "0"], "parallel"),
        (["upload", "{src}", "--parallel", "fast"], "parallel"),
        (["upload", "{src}", "--chunk-size", "autom"], "chunk"),
        (["upload", "{src}", "--to", "ftp://example"], "not understood"),
        (["upload"], "PATHS"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    src = make_file(tmp_path / "a.bin", 10)
    out = run_upwell(*[a.replace("{src}", str(src)) for a in args])
    assert out.returncode == 2
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_failed_upload_exits_1_with_one_line(tmp_path: Path) -> None:
    src = make_file(tmp_path / "a.bin", 10)
    out = run_upwell(
        "upload",
        str(src),
        "--to",
        f"http://127.0.0.1:{free_port()}/files/",
        env={"UPLOAD_MAX_RETRIES": "0"},
    )
    assert out.returncode == 1
    assert "upload failed" in out.stderr and "connection failed" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_upload_over_the_servers_max_size_fails_clearly(tmp_path: Path) -> None:
    src = make_file(tmp_path / "big.bin", 2 * MiB)
    with serve_process(tmp_path / "small", "--max-size", "1MiB") as (url, _):
        out = run_upwell("upload", str(src), "--to", url)
    assert out.returncode == 1
    assert "limit" in out.stderr or "413" in out.stderr
    assert "Traceback" not in out.stderr


def test_one_failure_among_several_files_exits_1_and_the_others_arrive(tmp_path: Path) -> None:
    small = make_file(tmp_path / "small.bin", 1000, seed=3)
    big = make_file(tmp_path / "big.bin", 2 * MiB, seed=4)
    with serve_process(tmp_path / "limited", "--max-size", "1MiB") as (url, _):
        out = run_upwell("upload", str(small), str(big), "--to", url, "--json")
        assert out.returncode == 1, out.stderr
        assert "big.bin" in out.stderr and "Traceback" not in out.stderr
        done = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        complete = [e for e in done if e.get("stage") == "complete"]
        assert [e["file_name"] for e in complete] != [] and len(complete) == 1, complete
        assert fetch(complete[0]["file_uri"]) == small.read_bytes()
        out = run_upwell("upload", str(big), str(small), "--to", url)
        assert out.returncode == 1, out.stderr  # the order does not matter


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path: Path, server: str) -> None:
    port = server.split(":")[2].split("/")[0]
    out = run_upwell("serve", "--port", port, "--data-dir", str(tmp_path / "d"), timeout=30)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert port in out.stderr


def test_progress_bars_on_a_terminal(server: str, tmp_path: Path) -> None:
    files = [make_file(tmp_path / f"tty{i}.bin", 2 * MiB, seed=i) for i in range(2)]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*UPWELL, "upload", *map(str, files), "--to", server],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "tty0.bin" in screen and "tty1.bin" in screen and "total" in screen
    assert "MB/s" in screen
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before  # untouched


# What start-up may import: the NDJSON upload to a tus server needs aiohttp, but not rich (bars
# on a terminal), SQLite (the server's store), Gemini's code or the server's; the help needs
# none of them, nor aiohttp.
NOT_FOR_A_TUS_UPLOAD = (
    "rich",
    "aiosqlite",
    "sqlite3",
    "upwell.targets.gemini",
    "upwell.protocols.google_resumable",
    "upwell.emulators",
    "upwell.server",
)
LOADED_AFTER = """
import json, sys
from upwell.cli import main
code = main(sys.argv[1:]) if len(sys.argv) > 1 else 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_after(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    """The modules a process has imported after `upwell ARGV` (none: after importing the CLI)."""
    out = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    last = json.loads(out.stdout.splitlines()[-1])
    assert last["code"] == 0, out.stderr
    modules: list[str] = last["modules"]
    return modules


def imported(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in names or m.startswith(names)]


def test_importing_the_cli_loads_no_network_storage_or_provider_code() -> None:
    assert imported(loaded_after(), (*NOT_FOR_A_TUS_UPLOAD, "aiohttp", "upwell.uploaders")) == []


def test_json_upload_to_tus_loads_no_progress_bars_sqlite_or_gemini(
    server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "lean.bin", 1000)
    modules = loaded_after(
        "upload", str(src), "--to", server, "--json",
        env={"UPLOAD_SESSION_DIR": str(tmp_path / "sessions")},
    )  # fmt: skip
    assert "upwell.targets.tus" in modules
    assert imported(modules, NOT_FOR_A_TUS_UPLOAD) == []
