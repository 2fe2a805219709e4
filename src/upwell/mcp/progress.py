"""MCP progress notifications for one upload: bytes, the file size as total, a message.

The uploader's events arrive as often as bytes move; the host gets at most one notification
per `min_gap` (≤ 5 a second) and at least one per `max_gap` while the upload runs, with
`progress` never decreasing, and a last one with `progress == total` when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ..config import format_size
from ..engine.retry import Sleep
from ..progress import UploadProgress

Send = Callable[[float, float, str], Awaitable[None]]

MIN_GAP = 0.4  # seconds: under three a second, so jitter on the way never makes it five
MAX_GAP = 1.0  # seconds: at least one a second while the upload runs
# The TS SDK's client handles a notification in a microtask but a response at once, so a last
# notice read in the same chunk as the result would reach a host after the result, and be
# dropped; a moment between the two keeps them apart.
FINAL_SETTLE = 0.05  # seconds


@dataclass(frozen=True)
class Notice:
    progress: int
    total: int
    message: str


class ProgressPacer:
    """What to send and when (no I/O): fed the uploader's events, asked on a clock."""

    def __init__(
        self, name: str, total: int, *, min_gap: float = MIN_GAP, max_gap: float = MAX_GAP
    ):
        self.name = name
        self.total = total
        self.min_gap = min_gap
        self.max_gap = max_gap
        self._latest = 0
        self._sent: int | None = None
        self._sent_at = float("-inf")

    def observe(self, progress: UploadProgress) -> None:
        """An uploader event; only the byte count matters, and it never goes back."""
        self._latest = max(self._latest, min(progress.bytes_uploaded, self.total))

    def due(self, now: float) -> Notice | None:
        """The notice to send now, if one is due."""
        since = now - self._sent_at
        if since < self.min_gap:
            return None
        if self._sent is not None and self._latest == self._sent and since < self.max_gap:
            return None
        return self._take(self._latest, now)

    def final(self, now: float) -> Notice:
        """The last notice: everything sent."""
        self._latest = self.total
        return self._take(self.total, now, done=True)

    def _take(self, n: int, now: float, done: bool = False) -> Notice:
        self._sent, self._sent_at = n, now
        pct = 100.0 * n / self.total if self.total else 100.0
        verb = "Uploaded" if done else "Uploading"
        message = f"{verb} {self.name}: {format_size(n)} of {format_size(self.total)} ({pct:.0f}%)"
        return Notice(n, self.total, message)


@contextlib.asynccontextmanager
async def paced_notifications(
    pacer: ProgressPacer,
    send: Send,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Send `pacer`'s notices from a task of their own while the block runs (one at a time,
    so they arrive in order); yields `finish()`, which sends the final one. Leaving the block
    stops the task at once, so a cancelled upload sends nothing more."""

    async def run() -> None:
        while True:
            notice = pacer.due(clock())
            if notice is not None:
                await send(notice.progress, notice.total, notice.message)
            await sleep(pacer.min_gap)

    task = asyncio.ensure_future(run())

    async def finish() -> None:
        task.cancel()
        await asyncio.wait([task])
        notice = pacer.final(clock())
        await send(notice.progress, notice.total, notice.message)
        await sleep(FINAL_SETTLE)

    try:
        yield finish
    finally:
        if not task.done():
            task.cancel()
            # asyncio.wait never raises the task's CancelledError, so ours still propagates.
            await asyncio.wait([task])
