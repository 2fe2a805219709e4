"""Start real `upwell` processes for end-to-end tests, and wait for them by polling."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

UPWELL = [sys.executable, "-m", "upwell"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0
) -> None:
    """Poll `url` until it answers 200 (bounded; fails fast if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def serve_process(data_dir: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`upwell serve` as a separate process; yields (tus endpoint URL, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *UPWELL,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}/files/", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def run_upwell(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UPWELL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@contextlib.asynccontextmanager
async def serve_process_async(data_dir: Path) -> AsyncIterator[tuple[str, int]]:
    """`upwell serve` as a separate process, for async tests; yields (tus URL, its pid)."""
    import asyncio

    import aiohttp

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *UPWELL, "serve", "--port", str(port), "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as s:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"upwell serve exited with {proc.returncode}")
                try:
                    async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}/files/", proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
