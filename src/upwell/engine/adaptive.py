"""How many streams one file uses, and how big each request is: decided from what is measured.

Both are sans-IO: the pipeline feeds them byte counts and times, they answer numbers, and the
unit tests drive them with a model of a link instead of sockets.

Streams (`StreamControl`), AIMD on the aggregate rate: start with a few, double while the
rate rises by more than `GAIN`, then add one at a time while that still helps; when more
streams stop paying, go back to the best count seen and hold; an error halves the count and
probing goes on one stream at a time. Never more than `cap`, never fewer than one.

Requests (`RequestSizer`): a request leaves its stream idle for about one round trip plus the
server's acknowledgement. Sending `b` bytes at a stream's rate `r` takes `b / r`, so for the
idle time to stay under `IDLE_SHARE` of it, `b >= idle * r / IDLE_SHARE`. The sizer measures
both per request and answers how many planned chunks the next request should carry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Streams to start with when adapting, and the most that "auto" ever opens.
START_STREAMS = 4
AUTO_MAX_STREAMS = 8
#: A rate must beat the best one by this factor for more streams to count as paying.
GAIN = 1.10
#: After a change, wait this long before measuring (new streams start from nothing), then
#: measure for at least this long.
SETTLE = 0.15
WINDOW = 0.4

IDLE_SHARE = 0.03
#: The most one request carries when the size adapts (a retry resends at most this much).
MAX_REQUEST = 128 * 1024 * 1024


@dataclass
class StreamControl:
    """The number of streams one file should have in flight now (`target`)."""

    cap: int
    adaptive: bool = True
    start: int = START_STREAMS
    clock: Callable[[], float] = time.monotonic
    target: int = field(init=False)
    best_rate: float = field(init=False, default=0.0)
    best_target: int = field(init=False, default=1)
    mode: str = field(init=False, default="slow")  # "slow" (doubling), "additive", "hold"
    changes: list[tuple[float, int]] = field(init=False, default_factory=list)
    _changed_at: float = field(init=False, default=0.0)
    _window: tuple[float, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.cap = max(1, self.cap)
        self.target = min(self.cap, max(1, self.start)) if self.adaptive else self.cap
        self.best_target = self.target
        if not self.adaptive or self.target >= self.cap:
            self.mode = "hold" if not self.adaptive else self.mode
        self._changed_at = self.clock()
        self.changes.append((self._changed_at, self.target))

    def _set(self, n: int, now: float) -> None:
        n = min(self.cap, max(1, n))
        if n != self.target:
            self.target = n
            self.changes.append((now, n))
        self._changed_at = now
        self._window = None

    def sample(self, total_bytes: int) -> int:
        """Note that `total_bytes` have gone out so far; returns the target stream count."""
        if self.mode == "hold":
            return self.target
        now = self.clock()
        if now - self._changed_at < SETTLE:
            return self.target
        if self._window is None:
            self._window = (now, total_bytes)
            return self.target
        t0, b0 = self._window
        if now - t0 < WINDOW:
            return self.target
        rate = (total_bytes - b0) / (now - t0)
        self._decide(rate, now)
        return self.target

    def _decide(self, rate: float, now: float) -> None:
        n = self.target
        if rate > self.best_rate * GAIN:
            self.best_rate, self.best_target = rate, n
            if n >= self.cap:
                self.mode = "hold"
                self._set(n, now)
                return
            self._set(n * 2 if self.mode == "slow" else n + 1, now)
            return
        self.best_rate = max(self.best_rate, rate) if n == self.best_target else self.best_rate
        if self.mode == "slow" and n > self.best_target + 1:
            self.mode = "additive"
            self._set(self.best_target + 1, now)
            return
        self.mode = "hold"
        self._set(self.best_target, now)

    def error(self) -> int:
        """A request failed: halve the streams and probe upwards again from there."""
        if not self.adaptive:
            return self.target
        now = self.clock()
        self.best_rate = 0.0
        self.mode = "additive"
        self._set(self.target // 2, now)
        self.best_target = self.target
        return self.target


@dataclass
class RequestSizer:
    """How many planned chunks the next request of one stream carries."""

    chunk_size: int
    adaptive: bool = True
    max_request: int = MAX_REQUEST
    idle: float = 0.0  # seconds a request leaves the stream idle (last byte out -> answer)
    rate: float = 0.0  # bytes per second one stream moves while it sends

    def observe(self, size: int, sending: float, waiting: float) -> None:
        """One request: `size` bytes handed out over `sending` s, answered `waiting` s later."""
        if size <= 0:
            return
        self.idle = waiting if self.idle == 0 else 0.5 * (self.idle + waiting)
        total = sending + waiting
        if total > 0:
            r = size / total
            self.rate = r if self.rate == 0 else 0.5 * (self.rate + r)

    def wanted_bytes(self) -> int:
        if not self.adaptive or self.rate <= 0 or self.idle <= 0:
            return self.chunk_size
        return int(self.idle * self.rate / IDLE_SHARE)

    def chunks(self, left: int) -> int:
        """How many of the `left` chunks to send in one request (at least one)."""
        if not self.adaptive or left <= 1:
            return 1
        most = max(1, self.max_request // max(1, self.chunk_size))
        return max(1, min(left, most, math.ceil(self.wanted_bytes() / self.chunk_size)))
