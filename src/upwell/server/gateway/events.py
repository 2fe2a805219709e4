"""The event bus: progress and record changes of uploads, for SSE streams and POST /upload.

`EventBus` is the interface; `MemoryEventBus` keeps events in one process (a bounded ring
for replay after `Last-Event-ID`). A PostgreSQL bus (LISTEN/NOTIFY) implements the same
surface for replicas. Event ids grow monotonically across the bus, so they grow in every
stream, which is a filter of the bus (one upload, or all uploads of one owner).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

EventKind = Literal["progress", "record"]

REPLAY_EVENTS = 10_000  # events kept for replay after a reconnect
SUBSCRIBER_QUEUE = 1_000  # events a slow subscriber may fall behind before it is cut off


@dataclass(frozen=True)
class Event:
    """One message: `data` is the JSON object of an SSE `data:` line or an NDJSON line."""

    id: int
    owner: str
    upload_id: str
    kind: EventKind
    data: dict[str, Any]


class SubscriberLagged(Exception):
    """A subscriber fell too far behind; it reconnects with Last-Event-ID to catch up."""


class Subscription(Protocol):
    """Events of one stream, in id order: those after `after` first, then live ones."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def next(self, wait: float) -> Event | None:
        """The next event, or None when none came within `wait` seconds."""


class EventBus(Protocol):
    """Publish events of uploads; subscribe to one upload or to all uploads of an owner."""

    async def publish(
        self, owner: str, upload_id: str, kind: EventKind, data: dict[str, Any]
    ) -> Event:
        """Send an event to every matching subscriber; returns it with its id."""

    def subscribe(
        self, owner: str, upload_id: str | None = None, after: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """A stream of the owner's events (of one upload when `upload_id` is given),
        starting after event `after` (missed ones replayed) or with the next one."""

    async def last_id(self) -> int:
        """The id of the newest event published (0 before the first)."""


class _MemorySubscription:
    def __init__(self, owner: str, upload_id: str | None) -> None:
        self.owner = owner
        self.upload_id = upload_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.lagged = False

    def matches(self, event: Event) -> bool:
        return event.owner == self.owner and (
            self.upload_id is None or event.upload_id == self.upload_id
        )

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def next(self, wait: float) -> Event | None:
        if self.lagged and self.queue.empty():
            raise SubscriberLagged("the stream fell behind; reconnect with Last-Event-ID")
        try:
            async with asyncio.timeout(wait):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.next(3600.0)
            if event is not None:
                yield event


class MemoryEventBus:
    """The in-process bus: one server process, events kept for replay in a bounded ring."""

    def __init__(self, replay: int = REPLAY_EVENTS) -> None:
        self._ring: deque[Event] = deque(maxlen=replay)
        self._subscribers: set[_MemorySubscription] = set()
        self._next_id = 1

    async def publish(
        self, owner: str, upload_id: str, kind: EventKind, data: dict[str, Any]
    ) -> Event:
        event = Event(self._next_id, owner, upload_id, kind, data)
        self._next_id += 1
        self._ring.append(event)
        for subscriber in self._subscribers:
            if subscriber.matches(event):
                subscriber.offer(event)
        return event

    @contextlib.asynccontextmanager
    async def subscribe(
        self, owner: str, upload_id: str | None = None, after: int | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = _MemorySubscription(owner, upload_id)
        if after is not None:
            for event in self._ring:
                if event.id > after and subscription.matches(event):
                    subscription.offer(event)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def last_id(self) -> int:
        return self._next_id - 1
