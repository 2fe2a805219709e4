"""The sweep that removes expired, unfinished uploads with their bytes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from .uploads import Uploads

log = logging.getLogger("upwell.server")


async def sweep_expired(
    uploads: Uploads, interval: float, sleep: Callable[[float], Awaitable[None]]
) -> None:
    """Purge at start-up, then every `interval` seconds, until cancelled."""
    while True:
        try:
            await uploads.purge_expired()
        except Exception:
            log.exception("sweeping expired uploads failed; trying again in %.0f s", interval)
        await sleep(interval)
