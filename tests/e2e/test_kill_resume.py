"""kill -9 of a running `upwell upload`, then the same command: only what was missing is sent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from tests.support.files import fetch_sha256, make_file
from tests.support.processes import serve_process_async
from tests.support.proxy import fault_proxy

MiB = 1024 * 1024


@pytest.mark.parametrize("parallel", [1, 3])
async def test_kill_9_then_rerun_sends_only_what_is_missing(
    tmp_path: Path, parallel: int, seed: int
) -> None:
    rng = random.Random(seed)
    size = 48 * MiB + rng.randrange(MiB)
    chunk = 2 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "dataset.bin", size, seed)
    env = {**os.environ, "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"), "PYTHONUNBUFFERED": "1"}
    async with serve_process_async(tmp_path / "srv") as (url, _pid), fault_proxy(url) as proxy:
        args = [
            sys.executable,
            "-m",
            "upwell",
            "upload",
            str(src),
            "--to",
            proxy.url(),
            "--chunk-size",
            "2MiB",
            "--parallel",
            str(parallel),
            "--json",
            "--limit-rate",
            "40MiB/s",
        ]
        kill_at = rng.uniform(0.2, 0.8) * size
        first = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env)
        assert first.stdout is not None
        async for line in first.stdout:
            if json.loads(line)["bytes_uploaded"] >= kill_at:
                break
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert first.returncode == -signal.SIGKILL
        # The first run put at most this much on the wire; the server holds no more than that.
        sent_before = proxy.bytes_up
        second = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await second.communicate()
        assert second.returncode == 0, (seed, err.decode())
        last = json.loads(out.decode().splitlines()[-1])
        assert last["stage"] == "complete"
        resent = proxy.bytes_up - sent_before
        missing = max(0, size - sent_before)
        assert resent <= missing + parallel * chunk + 256 * 1024, (seed, resent, missing)
        assert resent < size, seed
        digest = await asyncio.to_thread(lambda: hashlib.sha256(src.read_bytes()).hexdigest())
        assert await fetch_sha256(last["file_uri"]) == (size, digest), seed


async def test_ctrl_c_exits_130_keeps_the_session_paused_and_the_rerun_finishes(
    tmp_path: Path,
) -> None:
    size = 24 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "big.iso", size, 5)
    env = {**os.environ, "UPLOAD_SESSION_DIR": str(tmp_path / "sessions")}
    async with serve_process_async(tmp_path / "srv") as (url, _pid):
        args = [sys.executable, "-m", "upwell", "upload", str(src), "--to", url,
                "--chunk-size", "1MiB", "--parallel", "1", "--limit-rate", "20MiB/s",
                "--json"]  # fmt: skip
        first = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        assert first.stdout is not None and first.stderr is not None
        async for line in first.stdout:
            if json.loads(line)["bytes_uploaded"] >= 4 * MiB:
                break
        first.send_signal(signal.SIGINT)
        err = (await first.stderr.read()).decode()
        assert await first.wait() == 130
        assert err.strip() == "upwell: interrupted"
        listed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "upwell", "sessions", "list", "--json",
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await listed.communicate()
        (session,) = [json.loads(line) for line in out.decode().splitlines()]
        assert session["status"] == "paused"
        assert 0 < session["progress_percentage"] < 100
        second = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, env=env
        )
        out, _ = await second.communicate()
        assert second.returncode == 0
        last = json.loads(out.decode().splitlines()[-1])
        digest = await asyncio.to_thread(lambda: hashlib.sha256(src.read_bytes()).hexdigest())
        assert await fetch_sha256(last["file_uri"]) == (size, digest)
