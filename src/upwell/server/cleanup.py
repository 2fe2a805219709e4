"""The sweep that removes expired, unfinished uploads with their bytes, and bytes that no
upload record names (a crash's leftovers)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

from .uploads import Uploads

log = logging.getLogger("upwell.server")

# Bytes without a record are left this long: a create or an assembly in progress writes its
# bytes a moment before its record, and touches them all the while.
STRAY_GRACE = timedelta(hours=1)


async def sweep_expired(
    uploads: Uploads,
    interval: float,
    sleep: Callable[[float], Awaitable[None]],
    exclusive: Callable[[str], AbstractAsyncContextManager[bool]] | None = None,
) -> None:
    """Purge at start-up, then every `interval` seconds, until cancelled.

    With `exclusive` (replicas sharing one state), a sweep runs on one replica at a time;
    the others skip that round."""
    while True:
        try:
            async with (exclusive or _alone)("sweep") as mine:
                if mine:
                    await uploads.purge_expired()
                    await uploads.purge_strays(STRAY_GRACE)
        except Exception:
            log.exception("sweeping expired uploads failed; trying again in %.0f s", interval)
        await sleep(interval)


@asynccontextmanager
async def _alone(_name: str) -> AsyncIterator[bool]:
    yield True
