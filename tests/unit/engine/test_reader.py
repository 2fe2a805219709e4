"""FileSource without sockets: digests of ranges, and a close that waits for reads in threads."""

from __future__ import annotations

import asyncio
import hashlib
import os
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


async def test_close_stops_a_hash_in_a_thread_before_closing_its_descriptor(
    tmp_path: Path,
) -> None:
    """A cancelled upload leaves the whole-file hash running in a thread; closing the file must
    stop it, not pull the descriptor from under it (or hand the number to another file)."""
    path = make_file(tmp_path / "f.bin", 64 * MiB)
    source = await FileSource.open(path)
    fd = source.fd
    hasher = hashlib.sha256()
    hashing = asyncio.ensure_future(
        asyncio.to_thread(source.hash_range, 0, source.size, [hasher], 64 * 1024)
    )
    await asyncio.sleep(0)  # let the thread start (or not: both are fine)
    await source.close()
    try:
        await hashing  # stopped early, or refused to start: never an error of a closed fd
    except SourceError as exc:
        assert "closed" in str(exc)
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(SourceError, match="closed"):
        await source.digest_range(0, 10, ("sha256",))
