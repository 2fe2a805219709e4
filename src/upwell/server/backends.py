"""Open the state, byte and lock back ends that the settings name, closing each on exit.

Embedded: SQLite under the data directory, files beside it, locks in memory. Scale-out: a
`postgresql://` state (with cross-replica locks in the same database) and files in a shared
directory or in S3 (`s3://bucket/prefix`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .clock import Clock
from .gateway.events import EventBus
from .locks import Locker, MemoryLocker
from .settings import ServerSettings
from .state import SQLiteStateStore, StateStore
from .storage import ByteStore, FileByteStore

if TYPE_CHECKING:
    from .postgres_locks import PostgresLocker


@dataclass(frozen=True)
class Backends:
    state: StateStore
    storage: ByteStore
    locker: Locker
    bus: EventBus | None  # None: the caller's (in-process) bus
    claims: PostgresLocker | None = None  # replicas: forward claims, the one-at-a-time sweep


async def open_backends(
    settings: ServerSettings,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
    locker: Locker | None = None,
) -> Backends:
    """The back ends of `settings`; `locker` overrides the default one (tests)."""
    state: StateStore
    bus: EventBus | None = None
    claims: PostgresLocker | None = None
    if settings.state == "sqlite":
        sqlite = await SQLiteStateStore.open(settings.state_path)
        stack.push_async_callback(sqlite.close)
        state = sqlite
        if locker is None:
            locker = MemoryLocker(
                settings.stale_writer_seconds, clock.monotonic, settings.lock_wait_seconds
            )
    else:
        from .gateway.pg_events import PostgresEventBus
        from .postgres_locks import PostgresLocker
        from .state.postgres import PostgresStateStore

        postgres = await PostgresStateStore.open(settings.state)
        stack.push_async_callback(postgres.close)
        state = postgres
        claims = await PostgresLocker.open(
            settings.state,
            postgres.pool,
            settings.stale_writer_seconds,
            settings.lock_wait_seconds,
        )
        stack.push_async_callback(claims.close)
        locker = locker or claims
        pg_bus = await PostgresEventBus.open(settings.state, postgres.pool)
        stack.push_async_callback(pg_bus.close)
        bus = pg_bus
    storage: ByteStore
    if settings.storage is None:
        files = await FileByteStore.open(settings.files_dir, settings.io_threads)
        stack.push_async_callback(files.close)
        storage = files
    else:
        from .storage.s3 import S3ByteStore

        s3 = await S3ByteStore.open(settings.storage)
        stack.push_async_callback(s3.close)
        storage = s3
    return Backends(state, storage, locker, bus, claims)
