"""`upwell serve --forward gemini` as a real process beside `upwell emulate gemini`: curl
streams POST /upload's NDJSON to completion with the provider's name; a server killed
mid-forward finishes the forward when started again; tokens from a file separate owners."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.processes import UPWELL, free_port

GRANULE = 8 * 1024 * 1024  # the service's (and the emulator's) chunk granularity


async def _wait_ok(url: str, proc: asyncio.subprocess.Process, within: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.05)


@asynccontextmanager
async def process(
    args: list[str], ready: str, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *UPWELL, *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_ok(ready, proc)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    port = free_port()
    data = tmp_path / "gemini"
    args = ["emulate", "gemini", "--port", str(port), "--data-dir", str(data),
            "--delay", "0.3"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with process(args, f"{url}/v1beta/files?key=x"):
        yield url, data


def serve_args(port: int, data_dir: Path, *extra: str) -> list[str]:
    return ["serve", "--port", str(port), "--data-dir", str(data_dir), "--forward", "gemini",
            *extra]  # fmt: skip


async def test_curl_streams_ndjson_through_a_forward_to_completion(
    emulator: tuple[str, Path], tmp_path: Path
) -> None:
    gemini_url, gemini_data = emulator
    port = free_port()
    env = {"GEMINI_BASE_URL": gemini_url, "GEMINI_API_KEY": "k"}
    source = tmp_path / "talk.mp4"
    payload = os.urandom(GRANULE + 1000)
    source.write_bytes(payload)
    base = f"http://127.0.0.1:{port}"
    async with process(serve_args(port, tmp_path / "data"), f"{base}/healthz", env):
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-N", "-F", f"file=@{source}", f"{base}/upload",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await curl.communicate()
    assert curl.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert {line.get("phase") for line in lines[:-1]} == {"receive", "forward"}
    last = lines[-1]
    assert last["stage"] == "complete", last
    (forward,) = last["forwards"]
    assert forward["target"] == "gemini" and forward["file_name"].startswith("files/")
    (stored,) = sorted((gemini_data / "files").glob("*.bin"))
    assert stored.read_bytes() == payload


async def test_a_server_killed_mid_forward_finishes_it_when_started_again(
    emulator: tuple[str, Path], tmp_path: Path
) -> None:
    gemini_url, gemini_data = emulator
    port = free_port()
    env = {"GEMINI_BASE_URL": gemini_url, "GEMINI_API_KEY": "k"}
    data_dir = tmp_path / "data"
    payload = os.urandom(4 * GRANULE)
    base = f"http://127.0.0.1:{port}"
    tus = {"Tus-Resumable": "1.0.0"}
    async with process(serve_args(port, data_dir), f"{base}/healthz", env) as server:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/files/", headers={**tus, "Upload-Length": str(len(payload))}
            ) as resp:
                location = resp.headers["Location"]
            upload_id = location.rsplit("/", 1)[1]
            headers = {**tus, "Upload-Offset": "0",
                       "Content-Type": "application/offset+octet-stream"}  # fmt: skip
            async with http.patch(location, data=io.BytesIO(payload), headers=headers) as resp:
                assert resp.status == 204
        # Until the emulator holds a few chunks of the forward (its partial upload's bytes).
        for _ in range(1000):
            partial = list((gemini_data / "uploads").glob("*.bin"))
            if partial and partial[0].stat().st_size >= GRANULE:
                break
            await asyncio.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        await server.wait()
    assert not list((gemini_data / "files").glob("*.bin")), "finished before the kill"
    record: dict[str, Any] = {}
    async with (
        process(serve_args(port, data_dir), f"{base}/healthz", env),
        aiohttp.ClientSession() as http,
    ):
        for _ in range(1200):
            async with http.get(f"{base}/uploads/{upload_id}") as resp:
                record = await resp.json()
            if record["status"] != "forwarding":
                break
            await asyncio.sleep(0.05)
    assert record["status"] == "forwarded", record
    assert record["forwards"][0]["attempts"] == 2
    (stored,) = sorted((gemini_data / "files").glob("*.bin"))
    assert stored.read_bytes() == payload


async def test_tokens_from_a_file_separate_owners(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token-0123456789 alice\nbob-token-9876543210xx bob\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "d"),
            "--tokens-file", str(tokens)]  # fmt: skip
    async with process(args, f"{base}/healthz"), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/uploads") as resp:
            assert resp.status == 401
        alice = {"Authorization": "Bearer alice-token-0123456789", "Tus-Resumable": "1.0.0"}
        async with http.post(f"{base}/files/", headers={**alice, "Upload-Length": "0"}) as resp:
            assert resp.status == 201
        async with http.get(f"{base}/uploads", headers=alice) as resp:
            assert len((await resp.json())["uploads"]) == 1
        bob = {"Authorization": "Bearer bob-token-9876543210xx"}
        async with http.get(f"{base}/uploads", headers=bob) as resp:
            assert (await resp.json())["uploads"] == []


def test_a_bad_forward_target_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [*UPWELL, "serve", "--port", "0", "--data-dir", str(tmp_path), "--forward", "nowhere"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"},
    )  # fmt: skip
    assert out.returncode == 2 and "nowhere" in out.stderr and "Traceback" not in out.stderr
