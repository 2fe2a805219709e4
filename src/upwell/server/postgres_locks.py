"""`PostgresLocker`: one writer per upload across every replica that shares a PostgreSQL database.

The lock is a session advisory lock on one connection per replica, so it dies with its holder:
when a replica is killed its connection drops and PostgreSQL releases every lock it held. A row
in `upload_writers` says who holds an upload and how long it has been quiet (a heartbeat writes
each holder's idle time every fraction of `stale_after`); a newer request that finds the writer
quiet, or that preempts it, marks the row and sends a NOTIFY, and the holder's replica stops the
request, which commits what it stored and lets go. Releases are NOTIFYed too, so waiters wake at
once instead of polling. Within one replica a `MemoryLocker` orders requests first.

Taking and releasing a lock is one round trip each (the bookkeeping rides in the same
statement), on one of a few lock connections chosen by the upload's key, with
synchronous_commit off: the rows are advisory, the lock itself is the advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .locks import Lease, MemoryLocker, UploadLockedError

log = logging.getLogger("upwell.server")

CHANNEL = "upwell_writers"
LOCK_CONNECTIONS = 4  # per replica; an upload's lock always lives on the same one
# Two-integer advisory keys (a key space apart from the uploads' bigint ones): the first
# says what is held, the second which one.
FORWARD_CLAIMS = 0x7570_0001
SINGLE_REPLICA = 0x7570_0002
FORWARD_RESCAN_SECONDS = 5.0
TAKEOVER_GRACE = 30.0  # seconds a stopped writer gets to commit before the newcomer gives up


def lock_key(upload_id: str) -> int:
    """The advisory lock key of an upload: its first 64 bits as a signed bigint."""
    return int(upload_id[:16], 16) - (1 << 63)


def _int32(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


@dataclass(eq=False)
class _Held:
    lease: Lease
    stop: Callable[[], None]
    token: str
    clock: Callable[[], float]
    last_active: float
    stopping: bool = field(default=False)

    def touch(self, received: int) -> None:
        self.lease.touch(received)
        self.last_active = self.clock()

    def stop_now(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop()


class PostgresLocker:
    """Cross-replica upload locks; `open` it with a DSN and the state store's pool."""

    def __init__(
        self,
        dsn: str,
        pool: Any,
        stale_after: float,
        wait: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._stale_after = stale_after
        self._wait = wait
        self._clock = monotonic
        self._local = MemoryLocker(stale_after, monotonic, wait)
        self._replica = secrets.token_hex(6)
        self._serial = itertools.count()
        # The connections that hold this replica's advisory locks; the first also LISTENs.
        self._conns: list[Any] = [None] * LOCK_CONNECTIONS
        self._conn_locks = [asyncio.Lock() for _ in range(LOCK_CONNECTIONS)]  # a query at a time
        self._held: dict[str, _Held] = {}
        self._released: dict[str, asyncio.Event] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, dsn: str, pool: Any, stale_after: float, wait: float = 0.0
    ) -> PostgresLocker:
        locker = cls(dsn, pool, stale_after, wait)
        try:
            for index in range(LOCK_CONNECTIONS):
                await locker._connection(index)
        except BaseException:
            await locker.close()
            raise
        locker._heartbeat = asyncio.create_task(locker._beat(), name="upwell-lock-heartbeat")
        return locker

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        for conn in self._conns:
            if conn is not None and not conn.is_closed():
                await conn.close()

    def holding(self, upload_id: str) -> bool:
        return upload_id in self._held

    async def _connection(self, index: int) -> Any:
        import asyncpg

        conn = self._conns[index]
        if conn is None or conn.is_closed():
            conn = await asyncpg.connect(self._dsn, timeout=10)
            await conn.execute("SET synchronous_commit = off")
            if index == 0:
                await conn.add_listener(CHANNEL, self._notified)
            conn.add_termination_listener(self._lost)
            self._conns[index] = conn
        return conn

    @asynccontextmanager
    async def _on(self, upload_id: str) -> AsyncIterator[Any]:
        """The lock connection of `upload_id`, to itself for one query."""
        index = lock_key(upload_id) % LOCK_CONNECTIONS
        async with self._conn_locks[index]:
            yield await self._connection(index)

    def _lost(self, _conn: Any) -> None:
        # The locks went with the connection: no request of ours may keep writing.
        for held in list(self._held.values()):
            held.stop_now()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        upload_id, _, token = rest.partition(" ")
        if kind == "released":
            event = self._released.get(upload_id)
            if event is not None:
                event.set()
        elif kind == "stop":
            held = self._held.get(upload_id)
            if held is not None and held.token == token:
                held.stop_now()

    @asynccontextmanager
    async def hold(
        self, upload_id: str, stop: Callable[[], None], *, preempt: bool = False
    ) -> AsyncIterator[Lease]:
        async with self._local.hold(upload_id, stop, preempt=preempt) as lease:
            token = f"{self._replica}-{next(self._serial)}"
            await self._acquire(upload_id, token, preempt)
            held = _Held(lease, stop, token, self._clock, self._clock())
            self._held[upload_id] = held
            try:
                yield held
            finally:
                del self._held[upload_id]
                await asyncio.shield(self._release(upload_id, token))

    # -- one replica at a time: forwards of an upload, the sweep --------------------------

    rescan_seconds = FORWARD_RESCAN_SECONDS

    def claim(self, upload_id: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """The right to forward `upload_id` from this replica (ForwardClaims). Several tasks
        of this replica may hold it at once: a session's advisory locks are reentrant."""
        return self._pair(FORWARD_CLAIMS, _int32(upload_id), upload_id)

    def exclusive(self, name: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Whether this replica, of all sharing the database, runs `name` now."""
        return self._pair(SINGLE_REPLICA, _int32(name), None)

    @asynccontextmanager
    async def _pair(self, space: int, key: int, upload_id: str | None) -> AsyncIterator[bool]:
        index = 0 if upload_id is None else lock_key(upload_id) % LOCK_CONNECTIONS
        async with self._conn_locks[index]:
            conn = await self._connection(index)
            got: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", space, key)
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):  # a lost connection let go already
                    async with self._conn_locks[index]:
                        if not conn.is_closed():
                            await asyncio.shield(
                                conn.fetchval("SELECT pg_advisory_unlock($1, $2)", space, key)
                            )

    async def _try_lock(self, upload_id: str, token: str) -> bool:
        async with self._on(upload_id) as conn:
            got: bool = await conn.fetchval(
                "WITH got AS (SELECT pg_try_advisory_lock($1) AS ok),"
                " mark AS (INSERT INTO upload_writers (upload_id, holder, last_active)"
                " SELECT $2, $3, now() FROM got WHERE ok ON CONFLICT (upload_id) DO UPDATE"
                " SET holder = EXCLUDED.holder, last_active = EXCLUDED.last_active,"
                " stop_requested = FALSE)"
                " SELECT ok FROM got",
                lock_key(upload_id),
                upload_id,
                token,
            )
        return got

    async def _acquire(self, upload_id: str, token: str, preempt: bool) -> None:
        waited = False
        asked: str | None = None
        takeover_deadline: float | None = None
        while True:
            event = asyncio.Event()
            self._released[upload_id] = event  # before trying: a release cannot slip past
            try:
                if await self._try_lock(upload_id, token):
                    return
                row = await self._pool.fetchrow(
                    "SELECT holder, extract(epoch FROM now() - last_active)::float8 AS idle,"
                    " stop_requested FROM upload_writers WHERE upload_id = $1",
                    upload_id,
                )
                # No row yet: the holder is between taking the lock and saying so; it is live.
                quiet = row is not None and (
                    row["idle"] >= self._stale_after or row["stop_requested"]
                )
                if row is not None and (preempt or quiet):
                    if asked != row["holder"]:
                        asked = row["holder"]
                        await self._pool.execute(
                            "UPDATE upload_writers SET stop_requested = TRUE"
                            " WHERE upload_id = $1 AND holder = $2",
                            upload_id,
                            asked,
                        )
                        await self._pool.execute(
                            "SELECT pg_notify($1, $2)", CHANNEL, f"stop {upload_id} {asked}"
                        )
                    now = self._clock()
                    if takeover_deadline is None:
                        takeover_deadline = now + self._stale_after + TAKEOVER_GRACE
                    elif now >= takeover_deadline:
                        raise UploadLockedError(upload_id)
                    timeout = max(0.0, takeover_deadline - now)
                else:
                    if waited or self._wait <= 0:
                        raise UploadLockedError(upload_id)
                    waited = True
                    timeout = self._wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
            finally:
                if self._released.get(upload_id) is event:
                    del self._released[upload_id]

    async def _release(self, upload_id: str, token: str) -> None:
        try:
            async with self._on(upload_id) as conn:
                await conn.execute(
                    "WITH gone AS (DELETE FROM upload_writers"
                    " WHERE upload_id = $2 AND holder = $3)"
                    " SELECT pg_advisory_unlock($1), pg_notify($4, 'released ' || $2)",
                    lock_key(upload_id),
                    upload_id,
                    token,
                    CHANNEL,
                )
        except Exception:
            # A lost connection released the lock already; waiters time out and retry.
            log.warning("releasing the write lock of upload %s failed", upload_id, exc_info=True)

    async def _beat(self) -> None:
        """Record each holder's idle time; stop holders that were asked to, or lost the row."""
        interval = max(0.05, min(1.0, self._stale_after / 4))
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            try:
                await self._beat_once()
            except Exception:
                log.warning("the write-lock heartbeat failed", exc_info=True)

    async def _beat_once(self) -> None:
        held = dict(self._held)
        now = self._clock()
        ids = list(held)
        async with self._conn_locks[0]:
            conn = await self._connection(0)
            rows = await conn.fetch(
                "UPDATE upload_writers AS w"
                " SET last_active = now() - make_interval(secs => v.idle)"
                " FROM unnest($1::text[], $2::text[], $3::float8[]) AS v(upload_id, holder, idle)"
                " WHERE w.upload_id = v.upload_id AND w.holder = v.holder"
                " RETURNING w.upload_id, w.stop_requested",
                ids,
                [h.token for h in held.values()],
                [max(0.0, now - h.last_active) for h in held.values()],
            )
        seen = {row["upload_id"]: row["stop_requested"] for row in rows}
        for upload_id, h in held.items():
            if self._held.get(upload_id) is not h:
                continue  # released meanwhile
            if seen.get(upload_id, True):
                h.stop_now()
