"""One writer per upload: a second PATCH is refused while the first streams (423), but a writer
that has gone quiet is stopped and replaced, so a dead connection cannot block an upload.

`Locker` is the interface; `MemoryLocker` serves one process. A PostgreSQL locker (row lock or
advisory lock plus a heartbeat column) implements the same for replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ProtocolError


class UploadLockedError(ProtocolError):
    """Another request is writing this upload and is still sending bytes."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(
            f"upload {upload_id} is being written by another request; retry after it ends", 423
        )


class Lease(Protocol):
    """The right to write one upload, held for one request."""

    def touch(self, received: int) -> None:
        """Bytes arrived (`received` so far in this request): the writer is alive."""


class Locker(Protocol):
    def hold(
        self, upload_id: str, stop: Callable[[], None], *, preempt: bool = False
    ) -> AbstractAsyncContextManager[Lease]:
        """Hold the upload for one request; raises UploadLockedError while a live writer has it.

        `stop` is called when a later request takes over from this one (because it went quiet,
        or because the later one preempts: a termination): it must make the holder finish soon,
        keeping what it stored, and leave the block.
        """


@dataclass(eq=False)
class _Holder:
    clock: Callable[[], float]
    stop: Callable[[], None]
    last_active: float
    released: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    received: int = 0

    def touch(self, received: int) -> None:
        self.received = received
        self.last_active = self.clock()


class MemoryLocker:
    """Locks within one process, with stale-writer takeover on an injectable monotonic clock."""

    def __init__(
        self,
        stale_after: float,
        monotonic: Callable[[], float] = time.monotonic,
        wait: float = 0.0,
    ) -> None:
        self._stale_after = stale_after
        self._clock = monotonic
        # A client that retries at once after its connection broke usually finds its old
        # request still holding the upload for a few milliseconds: wait that out, not 423.
        self._wait = wait
        self._holders: dict[str, _Holder] = {}

    def holding(self, upload_id: str) -> bool:
        return upload_id in self._holders

    @asynccontextmanager
    async def hold(
        self, upload_id: str, stop: Callable[[], None], *, preempt: bool = False
    ) -> AsyncIterator[Lease]:
        holder = await self._acquire(upload_id, stop, preempt)
        try:
            yield holder
        finally:
            del self._holders[upload_id]
            holder.released.set()

    async def _acquire(self, upload_id: str, stop: Callable[[], None], preempt: bool) -> _Holder:
        waited = False
        while (current := self._holders.get(upload_id)) is not None:
            idle = self._clock() - current.last_active
            if not (preempt or current.stopping or idle >= self._stale_after):
                if waited or self._wait <= 0:
                    raise UploadLockedError(upload_id)
                waited = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(current.released.wait(), self._wait)
                continue
            if not current.stopping:
                current.stopping = True
                current.stop()
            await current.released.wait()
            # Loop: another request may have taken the upload while we waited.
        holder = _Holder(clock=self._clock, stop=stop, last_active=self._clock())
        self._holders[upload_id] = holder
        return holder
