"""Helpers to fetch what a server stored, over HTTP like any client."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import aiohttp


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random bytes (random enough not to compress)."""
    rng = random.Random(seed)
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 1 << 20)
            f.write(rng.randbytes(n))
            remaining -= n
    return path


async def fetch_sha256(url: str) -> tuple[int, str]:
    """(size, sha256) of GET url, streamed."""
    h = hashlib.sha256()
    size = 0
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        async for block in r.content.iter_chunked(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


async def head_status(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.head(url, headers={"Tus-Resumable": "1.0.0"}) as r:
        return r.status
