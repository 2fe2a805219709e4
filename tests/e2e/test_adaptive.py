"""`--parallel auto` and `--chunk-size auto` over an emulated long-distance link.

Real `upwell serve` behind benchmarks/wan_proxy.py (delay, a per-connection limit, a shared
link). Assertions are on behaviour (streams opened, requests merged, bytes identical), never
on timings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks.wan_proxy import wan_proxy

from tests.support.files import fetch_sha256, make_file
from upwell import ParallelUploader, UploadProgress
from upwell.engine.planner import MiB


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_auto_opens_several_streams_that_pull_parts_and_the_file_arrives_whole(
    upwell_server: str, tmp_path: Path
) -> None:
    size = 12 * MiB + 77
    src = make_file(tmp_path / "wan.bin", size, seed=21)
    async with wan_proxy(upwell_server, rtt=0.02, conn_rate=6e6, link_rate=40e6) as proxy:
        async with ParallelUploader(target=proxy.url(), chunk_size=1 * MiB) as up:
            assert up.settings.limits.adaptive
            up.progress_tracker._min_interval = 0.0
            events: list[UploadProgress] = []
            result = await up.upload_file(src, progress_callback=events.append)
        assert result.success, result.error
        assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))
    assert result.sha256 == sha256_of(src)
    # Nothing was compressed, so no compression ratio is reported (it once said ~1.08).
    assert len(events) > 5 and all(e.compression_ratio is None for e in events)
    # Every chunk is journaled with its own checksum, whichever stream carried it.
    data = src.read_bytes()
    assert [c.checksum for c in result.chunks] == [
        hashlib.sha256(data[c.offset : c.offset + c.size]).hexdigest() for c in result.chunks
    ]
    assert proxy.connections >= 4  # the start count of streams, each on its own connection


async def test_auto_chunk_size_merges_planned_chunks_into_fewer_requests(
    upwell_server: str, tmp_path: Path
) -> None:
    """One stream (--parallel 1) over a link with a round trip: once the rate and the idle
    time are measured, a request carries several planned chunks."""
    size = 24 * MiB + 5
    src = make_file(tmp_path / "one.bin", size, seed=22)
    patches = RequestCounter(b"PATCH /files/")
    async with wan_proxy(upwell_server, rtt=0.04, conn_rate=20e6, on_up=patches) as proxy:
        async with ParallelUploader(target=proxy.url(), max_parallel=1) as up:
            result = await up.upload_file_parallel(src)
        assert result.success, result.error
        assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))
    chunks = result.total_chunks
    assert chunks == 5  # 5 MiB chunks planned (the seed's table) and journaled
    assert all(c.uploaded and c.checksum for c in result.chunks)
    # The first request is one chunk (nothing measured yet); later ones carry several.
    assert 2 <= patches.count < chunks


async def test_a_pinned_chunk_size_sends_one_request_per_chunk(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "pinned.bin", 6 * MiB, seed=23)
    patches = RequestCounter(b"PATCH /files/")
    async with (
        wan_proxy(upwell_server, rtt=0.04, on_up=patches) as proxy,
        ParallelUploader(target=proxy.url(), max_parallel=1, chunk_size=1 * MiB) as up,
    ):
        result = await up.upload_file_parallel(src)
    assert result.success, result.error
    assert patches.count == 6


class RequestCounter:
    """Counts a request line in the client-to-server byte stream (bodies are random bytes,
    so the line does not occur in them by chance); blocks may split it."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.count = 0
        self._tail = b""

    def __call__(self, data: bytes) -> None:
        joined = self._tail + data
        self.count += joined.count(self.line)
        self._tail = joined[-(len(self.line) - 1) :]
