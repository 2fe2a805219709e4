"""FileSource without sockets: digests of ranges, and a close that waits for reads in threads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path

import pytest
from tests.support.files import make_file

from upwell.engine.reader import FileSource
from upwell.errors import SourceError

MiB = 1024 * 1024


async def test_digest_of_a_range_matches_hashlib(tmp_path: Path) -> None:
    path = make_file(tmp_path / "f.bin", 3 * MiB + 11)
    data = path.read_bytes()
    source = await FileSource.open(path)
    try:
        got = await source.digest_range(MiB - 1, 2 * MiB, ("sha256", "md5"))
    finally:
        await source.close()
    assert got == {
        "sha256": hashlib.sha256(data[MiB - 1 : 3 * MiB - 1]).digest(),
        "md5": hashlib.md5(data[MiB - 1 : 3 * MiB - 1]).digest(),
    }


class GatedHasher:
    """A hasher that tells the test when hashing started and holds its first slice until let go."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.fed = 0

    def update(self, data: memoryview) -> None:
        self.fed += len(data)
        self.started.set()
        if not self.go.wait(10):
            raise AssertionError("the test never let the hash go on")


async def test_close_stops_a_hash_in_a_thread_before_closing_its_descriptor(
    tmp_path: Path,
) -> None:
    """A cancelled upload leaves the whole-file hash running in a thread; closing the file must
    stop it, not pull the descriptor from under it (or hand the number to another file)."""
    path = make_file(tmp_path / "f.bin", 64 * MiB)
    source = await FileSource.open(path)
    fd = source.fd
    hasher = GatedHasher()
    hashing = asyncio.ensure_future(
        asyncio.to_thread(source.hash_range, 0, source.size, [hasher], 64 * 1024)
    )
    assert await asyncio.to_thread(hasher.started.wait, 10), "the hash never started"
    closing = asyncio.ensure_future(source.close())
    async with asyncio.timeout(10):
        # close() runs in a thread: poll (bounded) until it has begun and waits for the reader.
        while not source._closing:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    assert not closing.done()  # the descriptor stays open while the thread reads it
    os.fstat(fd)
    hasher.go.set()
    await closing
    await hashing  # stopped early, without an error of a closed descriptor
    assert 0 < hasher.fed < source.size
    with pytest.raises(OSError):
        os.fstat(fd)


async def test_a_hash_after_close_is_refused(tmp_path: Path) -> None:
    source = await FileSource.open(make_file(tmp_path / "g.bin", MiB))
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.to_thread(source.hash_range, 0, MiB, [hashlib.sha256()])
    with pytest.raises(SourceError, match="closed"):
        await source.digest_range(0, 10, ("sha256",))
