"""A flaky link costs little: through a proxy that cuts the connection every 3 MiB, an upload
with 1 MiB chunks and 2 parallel parts puts at most 1.15x the file on the wire, and the stored
file is byte-identical (checked whole at the end: Repr-Digest against the local SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from tests.support.files import fetch_sha256, make_file
from tests.support.proxy import fault_proxy
from upwell import ParallelUploader

MiB = 1024 * 1024


async def test_cuts_every_3_mib_cost_at_most_15_percent(upwell_server: str, tmp_path: Path) -> None:
    size = 30 * MiB + 12345
    src = await asyncio.to_thread(make_file, tmp_path / "flaky.bin", size, 21)
    cuts = [3 * MiB * n for n in range(1, 12)]
    async with fault_proxy(upwell_server, cut_at=cuts) as proxy:
        uploader = ParallelUploader(
            target=proxy.url(), chunk_size=MiB, max_parallel=2, max_retries=20
        )
        result = await uploader.upload_file_parallel(src)
        assert result.success, result.error
        assert proxy.cuts >= 9, proxy.cuts
        ratio = proxy.bytes_up / size
        print(f"{proxy.cuts} cuts, {ratio:.3f}x the file on the wire")
        assert ratio <= 1.15, f"{proxy.bytes_up} bytes on the wire for {size}: {ratio:.3f}x"
        digest = await asyncio.to_thread(lambda: hashlib.sha256(src.read_bytes()).hexdigest())
        assert await fetch_sha256(result.file_uri or "") == (size, digest)
