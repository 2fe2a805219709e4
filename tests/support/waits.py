"""Bounded waits: a test that waits for an event fails fast, saying what never happened,
instead of hanging until the per-test timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

WAIT_SECONDS = 15.0


async def within(awaitable: Awaitable[T], what: str, seconds: float = WAIT_SECONDS) -> T:
    """Await `awaitable` for at most `seconds`; on time-out fail naming what never happened."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise AssertionError(f"waited {seconds:g}s for {what}; it never happened") from None
