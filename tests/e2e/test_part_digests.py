"""Integrity without re-reading: the client checks each part's digest, as the server kept it
while the bytes arrived, instead of asking for a read-back of the assembled file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks.wan_proxy import wan_proxy

from tests.e2e.test_adaptive import RequestCounter
from tests.support.files import fetch_sha256, make_file
from upwell import ParallelUploader
from upwell.engine.planner import MiB


async def test_parallel_parts_are_verified_without_a_read_back_of_the_file(
    upwell_server: str, tmp_path: Path
) -> None:
    size = 9 * MiB + 3
    src = make_file(tmp_path / "parts.bin", size, seed=31)
    digest_heads = RequestCounter(b"Want-Repr-Digest")
    async with (
        wan_proxy(upwell_server, on_up=digest_heads) as proxy,
        ParallelUploader(target=proxy.url(), chunk_size=1 * MiB, max_parallel=3) as up,
    ):
        result = await up.upload_file_parallel(src)
        assert result.success, result.error
        assert await fetch_sha256(result.file_uri or "") == (
            size,
            hashlib.sha256(src.read_bytes()).hexdigest(),
        )
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert digest_heads.count == 0  # every part's digest came with its last PATCH


async def test_a_single_upload_hashes_the_file_in_the_same_read_as_its_requests(
    upwell_server: str, tmp_path: Path
) -> None:
    """One part: its followed hash is the file's, and is what the result reports."""
    src = make_file(tmp_path / "one.bin", 3 * MiB + 1, seed=32)
    async with ParallelUploader(target=upwell_server, chunk_size=1 * MiB, max_parallel=1) as up:
        result = await up.upload_file_parallel(src)
    assert result.success, result.error
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
