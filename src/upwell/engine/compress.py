"""gzip per chunk, only where it pays: ISA-L's level 1 runs at several hundred MB/s, so
compression keeps up with the network; data that does not shrink is sent as it is."""

from __future__ import annotations

import zlib
from typing import Protocol

from isal import isal_zlib as _impl  # ISA-L: 5-10x zlib's speed at level 1

LEVEL = 1

GZIP_WBITS = 31  # zlib's way of asking for the gzip container
SAMPLE_SIZE = 256 * 1024
#: A chunk is compressed only if a sample shrinks to at most this fraction of its size.
WORTHWHILE_RATIO = 0.9


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


def gzip_compressor() -> Compressor:
    """A streaming gzip compressor (one gzip member per request body)."""
    c: Compressor = _impl.compressobj(LEVEL, zlib.DEFLATED, GZIP_WBITS)
    return c


def worth_compressing(sample: bytes) -> bool:
    """Does this sample of a chunk shrink enough to be worth the CPU? (blocking; in a thread)"""
    if not sample:
        return False
    packed = _impl.compress(sample, LEVEL)
    return len(packed) <= WORTHWHILE_RATIO * len(sample)
