"""Bandwidth throttling: one token bucket shared by every stream of an uploader.

The bucket starts empty, so the rate holds from the first second (a full bucket would let
the first seconds run at up to three times the limit); tokens then accumulate up to `burst`
seconds' worth while nothing is sent. Waiters are served in order, so parallel streams share
the rate fairly. The clock and the sleep are passed in, so it is tested on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class BandwidthThrottle:
    """Token bucket: at most `rate_limit` bytes per second, bursts of `burst` seconds."""

    def __init__(
        self,
        rate_limit: int,
        *,
        burst: float = 2.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        self._rate = float(rate_limit)
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._stamp = clock()
        self._lock = asyncio.Lock()

    @property
    def rate_limit(self) -> int:
        return int(self._rate)

    @property
    def bucket_size(self) -> float:
        return self._rate * self._burst

    def set_rate(self, rate_limit: int) -> None:
        """Change the rate while uploads run; it applies from the next slice."""
        if rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        self._refill()
        self._rate = float(rate_limit)
        self._tokens = min(self._tokens, self.bucket_size)

    def slice_size(self, default: int) -> int:
        """How many bytes to meter at a time: ~1/20 s of the rate, so the flow is smooth."""
        return max(16 * 1024, min(default, int(self._rate / 20)))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.bucket_size, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def consume(self, n: int) -> None:
        """Wait until `n` bytes may be sent."""
        async with self._lock:
            while n > 0:
                take = min(float(n), max(self.bucket_size, 1.0))
                self._refill()
                if self._tokens < take:
                    await self._sleep((take - self._tokens) / self._rate)
                    self._refill()
                self._tokens -= take
                n -= int(take)

    # The seed's adaptive variant: back off when the target pushes back, recover on success.
    def record_success(self) -> None:
        """A request went through (hook for adaptive throttles)."""

    def record_failure(self, status: int | None) -> None:
        """A request failed (hook for adaptive throttles)."""


class AdaptiveBandwidthThrottle(BandwidthThrottle):
    """Slows down by 20% after 429/503/timeouts, speeds up by 10% after 10 successes,
    never above the configured ceiling."""

    def __init__(self, rate_limit: int, **kwargs: object) -> None:
        super().__init__(rate_limit, **kwargs)  # type: ignore[arg-type]
        self._ceiling = rate_limit
        self._floor = max(1, rate_limit // 100)
        self._successes = 0

    def record_success(self) -> None:
        self._successes += 1
        if self._successes >= 10:
            self._successes = 0
            self.set_rate(min(self._ceiling, int(self.rate_limit * 1.1)))

    def record_failure(self, status: int | None) -> None:
        if status in (None, 408, 429, 503, 504):
            self._successes = 0
            self.set_rate(max(self._floor, int(self.rate_limit * 0.8)))
