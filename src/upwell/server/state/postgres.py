"""`PostgresStateStore`: upload records in PostgreSQL, shared by any number of replicas.

Every method is one statement, so one transaction. The schema is versioned: start-up applies the
migrations not yet applied, under a transaction-scoped advisory lock, so three replicas starting
at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ...errors import ConfigError
from . import Upload

if TYPE_CHECKING:
    import asyncpg

# pg_advisory_xact_lock key serialising migrations ("upwell" in ASCII, as an int64).
MIGRATION_LOCK = 0x757077656C6C
POOL_SIZE = 10

# Each entry is one schema version; append, never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        upload_length BIGINT,
        upload_offset BIGINT NOT NULL,
        metadata TEXT NOT NULL,
        created TIMESTAMPTZ NOT NULL,
        expires TIMESTAMPTZ,
        concat TEXT,
        parts TEXT[] NOT NULL,
        completed BOOLEAN NOT NULL,
        sha256 TEXT
    );
    CREATE INDEX uploads_unfinished_expires ON uploads (expires) WHERE NOT completed;
    -- Who writes an upload right now (PostgresLocker): the holder, when it last received
    -- bytes, and whether a newer request asked it to stop. Unlogged: after a database crash
    -- no lock survives either, so neither may these rows, and writing them costs no WAL.
    CREATE UNLOGGED TABLE upload_writers (
        upload_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        last_active TIMESTAMPTZ NOT NULL,
        stop_requested BOOLEAN NOT NULL DEFAULT FALSE
    );
    """,
)

_COLUMNS = (
    "id, upload_length, upload_offset, metadata, created, expires, concat, parts, completed, sha256"
)


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def _row_to_upload(row: asyncpg.Record) -> Upload:
    concat = row["concat"]
    return Upload(
        id=row["id"],
        length=row["upload_length"],
        offset=row["upload_offset"],
        metadata=row["metadata"],
        created=row["created"],
        expires=row["expires"],
        concat="partial" if concat == "partial" else "final" if concat == "final" else None,
        parts=tuple(row["parts"]),
        sha256=row["sha256"],
    )


async def migrate(connection: asyncpg.Connection) -> int:
    """Apply the migrations this database lacks; returns the schema version now in place."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS upwell_schema (version INTEGER NOT NULL)"
        )
        version = await connection.fetchval("SELECT max(version) FROM upwell_schema") or 0
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(sql)
            await connection.execute("INSERT INTO upwell_schema (version) VALUES ($1)", number)
        return max(int(version), len(MIGRATIONS))


async def connect_pool(dsn: str, *, max_size: int = POOL_SIZE) -> asyncpg.Pool:
    """A connection pool on `dsn`, with the schema migrated; a bad DSN is a ConfigError."""
    try:
        import asyncpg
    except ImportError:
        raise ConfigError(
            "PostgreSQL state needs asyncpg: pip install 'upwell[postgres]'"
        ) from None
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=10)
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        raise ConfigError(f"cannot connect to the PostgreSQL state database: {exc}") from None
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
    except BaseException:
        await pool.close()
        raise
    return pool


class PostgresStateStore:
    """Upload records in PostgreSQL; any replica sees every other replica's commits."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @classmethod
    async def open(cls, dsn: str) -> PostgresStateStore:
        return cls(await connect_pool(dsn))

    async def create(self, upload: Upload) -> None:
        await self._pool.execute(
            f"INSERT INTO uploads ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            upload.id,
            upload.length,
            upload.offset,
            upload.metadata,
            upload.created,
            upload.expires,
            upload.concat,
            list(upload.parts),
            upload.completed,
            upload.sha256,
        )

    async def get(self, upload_id: str) -> Upload | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM uploads WHERE id = $1", upload_id)
        return None if row is None else _row_to_upload(row)

    async def update(self, upload: Upload) -> None:
        await self._pool.execute(
            "UPDATE uploads SET upload_length = $1, upload_offset = $2, expires = $3,"
            " completed = $4, sha256 = $5 WHERE id = $6",
            upload.length,
            upload.offset,
            upload.expires,
            upload.completed,
            upload.sha256,
            upload.id,
        )

    async def delete(self, upload_id: str) -> bool:
        status: str = await self._pool.execute("DELETE FROM uploads WHERE id = $1", upload_id)
        return status != "DELETE 0"

    async def expired(self, now: datetime, limit: int = 1000) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM uploads WHERE NOT completed AND expires <= $1 LIMIT $2", now, limit
        )
        return [row["id"] for row in rows]

    async def known(self, upload_ids: Sequence[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM uploads WHERE id = ANY($1::text[])", list(upload_ids)
        )
        return {row["id"] for row in rows}

    async def ping(self) -> None:
        """Raise if the database cannot answer (the readiness probe)."""
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
