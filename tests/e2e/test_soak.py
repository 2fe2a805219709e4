"""Soak: thousands of small uploads and hundreds of resumes (each after a cut body) against
one `upwell serve` process. Its open file descriptors return to where they started, its RSS
stays flat, and the state store agrees with the files on disk.

CI runs a short version; UPWELL_SOAK_SCALE=10 runs 4,000 uploads and 500 resumes (minutes):
    UPWELL_SOAK_SCALE=10 python -m pytest -m soak tests/e2e/test_soak.py
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

import aiohttp
import pytest

from tests.support.invariants import check_data_dir
from tests.support.processes import serve_process_async
from tests.support.waits import within

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

SCALE = float(os.environ.get("UPWELL_SOAK_SCALE", "1"))
UPLOADS = int(400 * SCALE)
RESUMES = int(50 * SCALE)
WARM_UP = 100
CONCURRENCY = 16
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def whole(http: aiohttp.ClientSession, url: str, data: bytes) -> None:
    """One upload: creation, then a PATCH of the whole body."""
    async with http.post(url, headers={**TUS, "Upload-Length": str(len(data))}) as r:
        assert r.status == 201, await r.text()
        location = r.headers["Location"]
    async with http.patch(location, data=data, headers={**PATCH, "Upload-Offset": "0"}) as r:
        assert r.status == 204, await r.text()


async def resumed(host: str, port: int, http: aiohttp.ClientSession, url: str, data: bytes) -> None:
    """An upload whose first PATCH is cut mid-body, then resumed from the offset HEAD gives."""
    async with http.post(url, headers={**TUS, "Upload-Length": str(len(data))}) as r:
        assert r.status == 201
        location = r.headers["Location"]
    path = "/files/" + location.rsplit("/", 1)[1]
    _reader, writer = await asyncio.open_connection(host, port)
    half = len(data) // 2
    writer.write(
        f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data[:half]
    )
    await writer.drain()
    writer.close()  # the link dies mid-body
    await writer.wait_closed()
    # As a tus client must: HEAD, PATCH from there, and on 409 ask again. (A HEAD that reaches
    # the server before it has even read the cut PATCH cannot know of it.)
    for _ in range(5):
        async with http.head(location, headers=TUS) as r:
            offset = int(r.headers["Upload-Offset"])
        assert 0 <= offset <= half
        headers = {**PATCH, "Upload-Offset": str(offset)}
        async with http.patch(location, data=data[offset:], headers=headers) as r:
            if r.status == 204:
                return
            assert r.status == 409, await r.text()
    raise AssertionError(f"{location}: still 409 after asking five times")


async def test_soak_many_uploads_and_resumes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randrange(1, 64 * 1024)) for _ in range(64)]
    expected = {hashlib.sha256(p).hexdigest() for p in payloads}
    data_dir = tmp_path / "srv"
    async with serve_process_async(data_dir) as (url, pid):
        host, port = "127.0.0.1", int(url.split(":")[2].split("/")[0])
        gate = asyncio.Semaphore(CONCURRENCY)

        async def run(n: int, resumes: int) -> None:
            connector = aiohttp.TCPConnector(limit=CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def one(i: int) -> None:
                    async with gate:
                        data = payloads[i % len(payloads)]
                        if i < resumes:
                            await resumed(host, port, http, url, data)
                        else:
                            await whole(http, url, data)

                await asyncio.gather(*(one(i) for i in range(n)))

        await within(run(WARM_UP, 10), "the warm-up uploads", 300)
        fds_before, rss_before = open_fds(pid), rss_kib(pid)

        await within(run(UPLOADS + RESUMES, RESUMES), "the soak uploads", 1500)

        # Idle connections close once the client session did; poll (bounded) until the
        # server's descriptors are back where they were.
        async def settle() -> None:
            while open_fds(pid) > fds_before:  # noqa: ASYNC110 (another process: poll)
                await asyncio.sleep(0.05)

        try:
            await within(settle(), "the server's open descriptors returning to their level", 20)
        except AssertionError:
            raise AssertionError(f"open fds {fds_before} -> {open_fds(pid)}") from None
        grown = rss_kib(pid) - rss_before
        assert grown < 24 * 1024, f"server RSS grew {grown} KiB over {UPLOADS + RESUMES} uploads"
    counts = await asyncio.to_thread(check_data_dir, data_dir, expected)
    total = WARM_UP + UPLOADS + RESUMES
    assert counts == {"uploads": total, "complete": total, "files": total}, counts
    files = sorted(p.name for p in (data_dir / "files").iterdir())
    assert len(files) == total, "bytes on disk that no record names, or records without bytes"
