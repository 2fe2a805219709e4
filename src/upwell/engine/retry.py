"""Retry policy: exponential backoff with full jitter, Retry-After honoured, bounded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import TargetError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first try; delays grow as base * 2**attempt up to `cap`."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        # Full jitter: clients that failed together do not come back together.
        return rng.uniform(ceiling / 2, ceiling)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TargetError) and exc.retryable


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, TargetError], None] | None = None,
) -> T:
    """Run `fn`; on a retryable TargetError wait and run it again, at most max_retries times.

    `fn` must be safe to run again: it asks the target where it stands before it sends.
    `on_retry(attempt, error)` is told of each retry before the wait.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await fn()
        except TargetError as exc:
            if not exc.retryable or attempt >= policy.max_retries:
                raise
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, exc)
            await sleep(policy.delay(attempt, exc.retry_after, rng))
