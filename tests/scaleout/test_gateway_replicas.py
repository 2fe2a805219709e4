"""The gateway over replicas: an SSE stream on one replica carries an upload fed through
another (events fan out by PostgreSQL LISTEN/NOTIFY), a reconnect replays from any replica,
and a forward runs on exactly one replica and is taken over when that replica dies."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.server.gateway.sse import next_message, until
from tests.support.processes import UPWELL, free_port, wait_http_ok

from .conftest import Replica, replica

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
GRANULE = 8 * 1024 * 1024  # the Gemini emulator's chunk granularity


@pytest.fixture
def replicas(postgres_dsn: str, tmp_path: Path) -> Iterator[list[Replica]]:
    shared = tmp_path / "shared"
    shared.mkdir()
    with (
        replica(shared, ["--state", postgres_dsn], {}) as a,
        replica(shared, ["--state", postgres_dsn], {}) as b,
        replica(shared, ["--state", postgres_dsn], {}) as c,
    ):
        yield [a, b, c]


async def test_an_sse_stream_on_one_replica_follows_an_upload_fed_through_another(
    replicas: list[Replica],
) -> None:
    creator, feeder, watcher = replicas
    data = os.urandom(3 * 1024 * 1024)
    async with aiohttp.ClientSession() as http:
        async with http.post(creator.url, headers={**TUS, "Upload-Length": str(len(data))}) as r:
            upload_id = r.headers["Location"].rsplit("/", 1)[-1]
        async with http.get(f"{watcher.base}/uploads/{upload_id}/events") as stream:
            assert stream.status == 200
            first = await next_message(stream)
            assert (first.event, first.data["status"]) == ("record", "receiving")
            half = len(data) // 2
            for offset, chunk in ((0, data[:half]), (half, data[half:])):
                headers = {**PATCH, "Upload-Offset": str(offset)}
                async with http.patch(
                    feeder.url + upload_id, headers=headers, data=io.BytesIO(chunk)
                ) as r:
                    assert r.status == 204
            seen = await asyncio.wait_for(
                until(stream, lambda m: m.event == "record" and m.data["status"] == "stored"), 30
            )
        progress = [m.data["bytes_uploaded"] for m in seen if m.event == "progress"]
        assert progress and progress == sorted(progress) and progress[-1] == len(data)
        ids = [int(m.id) for m in seen if m.id is not None]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # A reconnect to a third replica replays what came after the first progress event.
        after = next(m.id for m in seen if m.event == "progress")
        async with http.get(
            f"{creator.base}/uploads/{upload_id}/events", headers={"Last-Event-ID": str(after)}
        ) as stream:
            replayed = await asyncio.wait_for(
                until(stream, lambda m: m.event == "record" and m.data["status"] == "stored"), 30
            )
        replayed_ids = [int(m.id) for m in replayed if m.id is not None]
        assert replayed_ids == [i for i in ids if i > int(after)]


def _process(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*UPWELL, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`upwell emulate gemini`, a little slow per chunk so a forward takes a while."""
    port = free_port()
    data = tmp_path / "gemini"
    proc = _process(
        ["emulate", "gemini", "--port", str(port), "--data-dir", str(data), "--delay", "0.3"], {}
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/v1beta/files?key=x", proc)
        yield f"http://127.0.0.1:{port}", data
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_forward_runs_on_one_replica_and_another_takes_it_over_when_it_dies(
    postgres_dsn: str, tmp_path: Path, emulator: tuple[str, Path]
) -> None:
    gemini_url, gemini_data = emulator
    env = {"GEMINI_BASE_URL": gemini_url, "GEMINI_API_KEY": "k"}
    shared = tmp_path / "shared"
    shared.mkdir()
    extra = ["--state", postgres_dsn, "--forward", "gemini"]
    payload = os.urandom(4 * GRANULE)
    with replica(shared, extra, env) as first, replica(shared, extra, env) as second:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                first.url, headers={**TUS, "Upload-Length": str(len(payload))}
            ) as r:
                upload_id = r.headers["Location"].rsplit("/", 1)[-1]
            headers = {**PATCH, "Upload-Offset": "0"}
            async with http.patch(
                first.url + upload_id, headers=headers, data=io.BytesIO(payload)
            ) as r:
                assert r.status == 204
            # The replica that finished the upload forwards it; it is a few chunks in.
            deadline = time.monotonic() + 60
            while True:
                partial = list((gemini_data / "uploads").glob("*.bin"))
                if partial and partial[0].stat().st_size >= GRANULE:
                    break
                assert time.monotonic() < deadline, "the forward never started"
                await asyncio.sleep(0.02)
            # One forward only: the other replica's rescans found it claimed.
            assert len(partial) == 1
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)
            assert not list((gemini_data / "files").glob("*.bin")), "finished before the kill"
            record: dict[str, Any] = {}
            deadline = time.monotonic() + 90
            while True:
                async with http.get(f"{second.base}/uploads/{upload_id}") as r:
                    record = await r.json()
                if record["status"] != "forwarding":
                    break
                assert time.monotonic() < deadline, f"never taken over: {record}"
                await asyncio.sleep(0.05)
    assert record["status"] == "forwarded", record
    (forward,) = record["forwards"]
    assert forward["attempts"] == 2  # the dead replica's, then the survivor's
    (stored,) = sorted((gemini_data / "files").glob("*.bin"))
    assert stored.read_bytes() == payload
