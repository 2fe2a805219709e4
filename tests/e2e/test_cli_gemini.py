"""`upwell emulate gemini`, `upwell upload --to gemini` and `upwell files` as users run them:
real processes on loopback, the key only in the environment."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.files import make_file
from tests.support.processes import UPWELL, run_upwell
from upwell.emulators.gemini import EMULATOR, FaultPlan, create_gemini_app
from upwell.emulators.runner import emulator_in_thread

KEY = "cli-test-key-42"


def upwell(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UPWELL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """`upwell emulate gemini` as a process with faults on; yields (base URL, data dir, proc)."""
    data = tmp_path / "emu"
    proc = subprocess.Popen(
        [
            *UPWELL,
            "emulate",
            "gemini",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--api-key-env",
            "EMU_KEY",
            "--granularity",
            "256KiB",
            "--processing-polls",
            "0",
            "--drop-after",
            "300000",
            "--drop-every",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EMU_KEY": KEY, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the emulator listens (or exits)
        match = re.search(r"(http://\S+?) ", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        yield match.group(1), data, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_upload_to_gemini_then_list_get_and_remove(
    emulator: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, data, proc = emulator
    env = {
        "GEMINI_API_KEY": KEY,
        "GEMINI_BASE_URL": url,
        "UPLOAD_MAX_RETRIES": "5",
        "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
    }
    src = make_file(tmp_path / "talk.mp4", 5 * 256 * 1024 + 17, seed=1)

    out = run_upwell(
        "upload", str(src), "--to", "gemini", "--chunk-size", "256KiB", "--json", env=env
    )
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.splitlines()[-1])
    assert last["stage"] == "complete" and last["file_uri"].startswith(f"{url}/v1beta/files/")
    assert last["file_name"] == f"files/{last['file_uri'].rsplit('/', 1)[-1]}"
    file_id = last["file_uri"].rsplit("/", 1)[-1]
    stored = data / "files" / f"{file_id}.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert KEY not in out.stdout + out.stderr

    listed = upwell("files", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["name"] for r in rows] == [f"files/{file_id}"]
    assert rows[0]["size"] == src.stat().st_size and rows[0]["mime_type"] == "video/mp4"

    got = upwell("files", "get", file_id, "--json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["state"] == "ACTIVE"
    text = upwell("files", "get", f"files/{file_id}", env=env)
    assert f"name: files/{file_id}" in text.stdout and "state: ACTIVE" in text.stdout

    removed = upwell("files", "rm", f"files/{file_id}", env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == f"deleted files/{file_id}"
    assert not stored.exists()

    gone = upwell("files", "get", file_id, env=env)
    assert gone.returncode == 1
    assert len(gone.stderr.strip().splitlines()) == 1 and "HTTP 403" in gone.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_wrong_key_fails_with_one_line_and_exit_1(
    emulator: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, _, _ = emulator
    env = {
        "GEMINI_API_KEY": "not-the-key",
        "GEMINI_BASE_URL": url,
        "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
    }
    src = make_file(tmp_path / "a.bin", 1000, seed=2)
    out = run_upwell("upload", str(src), "--to", "gemini", env=env)
    assert out.returncode == 1
    assert "refused the API key" in out.stderr and "Traceback" not in out.stderr
    listed = upwell("files", "list", env=env)
    assert listed.returncode == 1
    assert len(listed.stderr.strip().splitlines()) == 1 and "GEMINI_API_KEY" in listed.stderr
    assert "not-the-key" not in listed.stderr + out.stderr


def test_usage_errors_exit_2() -> None:
    env = {"GEMINI_API_KEY": ""}
    missing = upwell("files", "list", env=env)
    assert missing.returncode == 2 and "GEMINI_API_KEY" in missing.stderr
    other = upwell("files", "list", "--to", "http://x/files/", env={"GEMINI_API_KEY": "k"})
    assert other.returncode == 2 and "gemini" in other.stderr
    bad_name = upwell("files", "get", "Not_A_Name", env={"GEMINI_API_KEY": "k"})
    assert bad_name.returncode == 2 and "not a file name" in bad_name.stderr
    no_var = upwell("emulate", "gemini", "--api-key-env", "UNSET_VAR_XYZ", env={})
    assert no_var.returncode == 2 and "UNSET_VAR_XYZ" in no_var.stderr


def test_kill_9_mid_upload_then_the_same_command_resumes(tmp_path: Path) -> None:
    G = 8 * 1024 * 1024  # `--to gemini` plans for the real service's granularity
    faults = FaultPlan(stall_requests=frozenset({3}))  # the third chunk request hangs
    apps: list[web.Application] = []

    def make_app() -> web.Application:
        apps.append(
            create_gemini_app(tmp_path / "emu", granularity=G, processing_polls=0, faults=faults)
        )
        return apps[-1]

    src = make_file(tmp_path / "big.mov", 3 * G + 5, seed=3)
    size = src.stat().st_size
    with emulator_in_thread(make_app) as url:
        env = {
            **os.environ,
            "GEMINI_API_KEY": KEY,
            "GEMINI_BASE_URL": url,
            "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
        }
        argv = ["upload", str(src), "--to", "gemini", "--chunk-size", "8MiB", "--json"]
        first = subprocess.Popen(
            [*UPWELL, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        try:
            assert faults.stalled.wait(20), "the upload never reached its third chunk"
        finally:
            first.kill()  # SIGKILL: no cleanup, no abort, the session stays as it was
            first.wait()
        # (a kill during a save may also leave the save's temp file: check that too)
        sessions = list((tmp_path / "sessions").iterdir())
        assert sessions
        assert all(KEY not in s.read_text() for s in sessions)  # the upload URL, never the key
        second = run_upwell(*argv, env=env)
        assert second.returncode == 0, second.stderr
        last = json.loads(second.stdout.splitlines()[-1])
        assert last["stage"] == "complete"
        emu = apps[0][EMULATOR]
        assert len(emu.uploads) == 1  # resumed the same upload; no second one was started
        assert emu.bytes_received == size  # the two chunks stored before the kill went once
        stored = tmp_path / "emu" / "files" / f"{last['file_uri'].rsplit('/', 1)[-1]}.bin"
        assert stored.read_bytes() == src.read_bytes()
