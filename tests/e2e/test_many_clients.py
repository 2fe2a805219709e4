"""100 clients uploading at once to one `upwell serve` all succeed, in bounded server memory."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from tests.support.files import fetch_sha256, make_file
from tests.support.processes import serve_process_async
from upwell import ChunkedUploader

MiB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_hundred_clients_at_once_all_succeed_within_256_mib(tmp_path: Path) -> None:
    files = [
        await asyncio.to_thread(make_file, tmp_path / f"client{i}.bin", 2 * MiB + i * 997, i)
        for i in range(100)
    ]
    async with serve_process_async(tmp_path / "srv") as (url, pid):
        # 100 independent clients: each its own uploader and connection pool.
        uploaders = [ChunkedUploader(target=url, chunk_size=512 * 1024) for _ in files]
        results = await asyncio.gather(
            *(u.upload_file(f) for u, f in zip(uploaders, files, strict=True))
        )
        failed = [r.error for r in results if not r.success]
        assert not failed, failed[:3]
        for f, r in zip(files, results, strict=True):
            digest = await asyncio.to_thread(lambda f=f: hashlib.sha256(f.read_bytes()).hexdigest())
            assert await fetch_sha256(r.file_uri or "") == (f.stat().st_size, digest)
        peak = await asyncio.to_thread(peak_rss_mib, pid)
        assert peak <= 256, f"server peak RSS {peak:.0f} MiB"
