"""`PostgresEventBus`: the event bus shared by every replica, on PostgreSQL LISTEN/NOTIFY.

A publish is one statement: it takes a transaction-scoped advisory lock (so events commit in
id order, and every replica hears them in that order), numbers the event from a sequence,
keeps it in `upwell_events` for replay, and NOTIFYs it. Each replica LISTENs on one
connection and hands the events to its own subscribers in the order they arrive; an event too
big for a NOTIFY payload is sent as its id and read back from the table. A subscriber that
reconnects with Last-Event-ID is replayed from the table, whichever replica published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from .events import (
    REPLAY_EVENTS,
    Event,
    EventKind,
    Subscription,
    _MemorySubscription,
)

log = logging.getLogger("upwell.server")

CHANNEL = "upwell_events"
PUBLISH_LOCK = 0x757077656C6D  # orders publishes across replicas
NOTIFY_LIMIT = 7000  # bytes; PostgreSQL refuses payloads of 8000 and more
TRIM_EVERY = 500  # publishes between trims of the replay table
RECONNECT_MAX = 10.0  # seconds between tries to listen again, at most


def _event(row: Any) -> Event:
    data = row["data"]
    return Event(
        int(row["id"]),
        row["owner"],
        row["upload_id"],
        row["kind"],
        json.loads(data) if isinstance(data, str) else data,
    )


class PostgresEventBus:
    """Events of every replica, to subscribers on any replica."""

    def __init__(self, dsn: str, pool: Any, replay: int = REPLAY_EVENTS) -> None:
        self._dsn = dsn
        self._pool = pool
        self._replay = replay
        self._listener: Any = None
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._subscribers: set[_MemorySubscription] = set()
        self._published = 0
        self._closing = False
        self._relisten: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, dsn: str, pool: Any, replay: int = REPLAY_EVENTS) -> PostgresEventBus:

        bus = cls(dsn, pool, replay)  # the tables are the state store's migrations
        await bus._listen()
        bus._dispatcher = asyncio.create_task(bus._dispatch(), name="upwell-event-dispatch")
        return bus

    async def _listen(self) -> None:
        import asyncpg

        listener = await asyncpg.connect(self._dsn, timeout=10)
        await listener.add_listener(CHANNEL, self._heard)
        listener.add_termination_listener(self._lost)
        self._listener = listener

    def _lost(self, _conn: Any) -> None:
        if self._closing:
            return
        log.warning("the event listener lost its connection; reconnecting")
        self._relisten = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        # Events published meanwhile reach subscribers that reconnect with Last-Event-ID.
        delay = 0.5
        while not self._closing:
            try:
                await self._listen()
                return
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def publish(
        self, owner: str, upload_id: str, kind: EventKind, data: dict[str, Any]
    ) -> Event:
        payload = json.dumps(data, separators=(",", ":"))
        event_id = await self._pool.fetchval(
            "WITH ordered AS (SELECT pg_advisory_xact_lock($1)),"
            " kept AS (INSERT INTO upwell_events (id, owner, upload_id, kind, data)"
            " SELECT nextval('upwell_event_ids'), $2, $3, $4, $5::jsonb FROM ordered"
            " RETURNING id),"
            " told AS (SELECT id, pg_notify($6, CASE WHEN octet_length($7) < $8"
            " THEN id::text || ' ' || $7 ELSE id::text END) FROM kept)"
            " SELECT id FROM told",
            PUBLISH_LOCK,
            owner,
            upload_id,
            kind,
            payload,
            CHANNEL,
            json.dumps([owner, upload_id, kind, data], separators=(",", ":")),
            NOTIFY_LIMIT,
        )
        self._published += 1
        if self._published % TRIM_EVERY == 0:
            await self._pool.execute(
                "DELETE FROM upwell_events WHERE id <= $1", int(event_id) - self._replay
            )
        return Event(int(event_id), owner, upload_id, kind, data)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._inbox.put_nowait(payload)

    async def _dispatch(self) -> None:
        """Hand heard events to subscribers one at a time, so they keep their order."""
        while True:
            payload = await self._inbox.get()
            try:
                event = await self._decode(payload)
            except Exception:
                log.warning("an event could not be read back", exc_info=True)
                continue
            if event is None:
                continue
            for subscriber in list(self._subscribers):
                if subscriber.matches(event):
                    subscriber.offer(event)

    async def _decode(self, payload: str) -> Event | None:
        head, _, body = payload.partition(" ")
        if body:
            owner, upload_id, kind, data = json.loads(body)
            return Event(int(head), owner, upload_id, kind, data)
        row = await self._pool.fetchrow(
            "SELECT id, owner, upload_id, kind, data FROM upwell_events WHERE id = $1", int(head)
        )
        return None if row is None else _event(row)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, owner: str, upload_id: str | None = None, after: int | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = _MemorySubscription(owner, upload_id)
        self._subscribers.add(subscription)  # first: nothing published meanwhile is missed
        try:
            if after is not None:
                await self._replay_into(subscription, after)
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def _replay_into(self, subscription: _MemorySubscription, after: int) -> None:
        rows = await self._pool.fetch(
            "SELECT id, owner, upload_id, kind, data FROM upwell_events"
            " WHERE id > $1 AND owner = $2 AND ($3::text IS NULL OR upload_id = $3)"
            " ORDER BY id LIMIT $4",
            after,
            subscription.owner,
            subscription.upload_id,
            self._replay,
        )
        live: list[Event] = []
        while not subscription.queue.empty():
            live.append(subscription.queue.get_nowait())
        replayed = [_event(row) for row in rows]
        newest = replayed[-1].id if replayed else after
        for event in [*replayed, *(e for e in live if e.id > newest)]:
            subscription.offer(event)

    async def last_id(self) -> int:
        value = await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM upwell_events")
        return int(value)
