"""Running SHA-256 of uploads as their bytes arrive, so a finished upload's digest is ready
when its last byte lands instead of being read back from storage.

It lives above the byte store (it sees the request bodies the Uploads layer hands to any
ByteStore), in memory. A digest is carried on only while requests arrive in order at the
offset it covers; after a restart, on another replica, or after a request whose bytes were
only partly kept, it is dropped and the digest is read back from storage when asked for.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from typing import Any

#: Unfinished uploads whose running digest is kept; beyond this the oldest are forgotten
#: (they fall back to a read-back), so abandoned uploads cannot grow memory without bound.
MAX_RUNNING = 4096


class RequestDigest:
    """The running digest as one request feeds it: batches are hashed in a thread, one at a
    time and in order, beside the store's own writes."""

    def __init__(self, hasher: Any | None) -> None:
        self._hasher = hasher
        self._pending: asyncio.Future[None] | None = None
        self.fed = 0

    @property
    def active(self) -> bool:
        return self._hasher is not None

    async def feed(self, batch: list[bytes]) -> None:
        """Hash `batch` after the batch before it; returns without waiting for this one."""
        if self._hasher is None or not batch:
            return
        if self._pending is not None:
            await self._pending
        self.fed += sum(len(b) for b in batch)
        self._pending = asyncio.ensure_future(asyncio.to_thread(_update, self._hasher, batch))

    async def done(self) -> Any | None:
        """The hasher with every fed batch in it (None when not tracking)."""
        if self._pending is not None:
            await self._pending
            self._pending = None
        return self._hasher

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


class RunningDigests:
    """Per upload id: (offset covered, SHA-256 of the bytes before it)."""

    def __init__(self) -> None:
        self._by_id: collections.OrderedDict[str, tuple[int, Any]] = collections.OrderedDict()

    def begin(self, upload_id: str, offset: int) -> RequestDigest:
        """A digest for a request appending at `offset`: a copy of the running one when it
        covers exactly the bytes before `offset`, a fresh one at 0, else none."""
        held = self._by_id.get(upload_id)
        if held is not None and held[0] == offset:
            return RequestDigest(held[1].copy())
        if held is not None:
            del self._by_id[upload_id]  # out of order: someone else wrote, or bytes were cut
        return RequestDigest(hashlib.sha256() if offset == 0 else None)

    def commit(
        self, upload_id: str, offset: int, request: RequestDigest, hasher: Any, kept: int
    ) -> bytes | None:
        """Record the outcome of a request that started at `offset` and kept `kept` bytes.
        Returns the digest of bytes [0, offset + kept) when it is known."""
        if hasher is None:
            return None
        if kept == request.fed:
            self._by_id[upload_id] = (offset + kept, hasher)
            self._by_id.move_to_end(upload_id)
            while len(self._by_id) > MAX_RUNNING:
                self._by_id.popitem(last=False)
            return bytes(hasher.digest())
        if kept:  # only part of what was hashed was kept: the digest covers the wrong bytes
            self._by_id.pop(upload_id, None)
        return None

    def forget(self, upload_id: str) -> None:
        self._by_id.pop(upload_id, None)


def _update(hasher: Any, batch: list[bytes]) -> None:
    for b in batch:
        hasher.update(b)
