"""`PostgresStateStore`: upload records in PostgreSQL, shared by any number of replicas.

Every method is one statement, so one transaction. The schema is versioned: start-up applies the
migrations not yet applied, under a transaction-scoped advisory lock, so three replicas starting
at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from . import Forward, Record, Upload, UploadStatus, Usage

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
    ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT 'anonymous';
    ALTER TABLE uploads ADD COLUMN status TEXT NOT NULL DEFAULT 'receiving';
    CREATE INDEX uploads_by_owner ON uploads (owner, created DESC, id DESC);
    CREATE INDEX uploads_by_sha256 ON uploads (sha256) WHERE sha256 IS NOT NULL;
    -- The forwards of each upload and their journal (the catalog).
    CREATE TABLE forwards (
        upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT,
        file_name TEXT,
        file_uri TEXT,
        PRIMARY KEY (upload_id, target)
    );
    CREATE INDEX forwards_unfinished ON forwards (state) WHERE state IN ('pending', 'running');
    CREATE INDEX forwards_by_target_state ON forwards (target, state);
    -- The event bus (gateway/pg_events.py): ids in publish order, the newest kept for replay.
    CREATE SEQUENCE upwell_event_ids;
    CREATE UNLOGGED TABLE upwell_events (
        id BIGINT PRIMARY KEY,
        owner TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        data JSONB NOT NULL
    );
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
    "id, upload_length, upload_offset, metadata, created, expires, concat, parts, completed,"
    " sha256, owner"
)
_FORWARD_COLUMNS = "upload_id, target, state, attempts, error, file_name, file_uri"
_STATUS = frozenset({"receiving", "stored", "forwarding", "forwarded", "failed", "expired"})
_FORWARD_STATES = frozenset({"pending", "running", "done", "failed", "deduped"})


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
        owner=row["owner"],
    )


def _status(value: str) -> UploadStatus:
    assert value in _STATUS, value
    return value  # type: ignore[return-value]


def _row_to_forward(row: asyncpg.Record) -> Forward:
    state = row["state"]
    assert state in _FORWARD_STATES, state
    return Forward(
        upload_id=row["upload_id"],
        target=row["target"],
        state=state,
        attempts=row["attempts"],
        error=row["error"],
        file_name=row["file_name"],
        file_uri=row["file_uri"],
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
            f"INSERT INTO uploads ({_COLUMNS}, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
            upload.owner,
            "stored" if upload.completed else "receiving",
        )

    async def get(self, upload_id: str) -> Upload | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM uploads WHERE id = $1", upload_id)
        return None if row is None else _row_to_upload(row)

    async def update(self, upload: Upload) -> None:
        await self._pool.execute(
            "UPDATE uploads SET upload_length = $1, upload_offset = $2, expires = $3,"
            " completed = $4, sha256 = $5,"
            " status = CASE WHEN $4 AND status = 'receiving' THEN 'stored' ELSE status END"
            " WHERE id = $6",
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

    async def record(self, upload_id: str) -> Record | None:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS}, status FROM uploads WHERE id = $1", upload_id
            )
            if row is None:
                return None
            forwards = await self._forwards(conn, [upload_id])
        return Record(_row_to_upload(row), _status(row["status"]), forwards.get(upload_id, ()))

    async def records(
        self,
        owner: str,
        *,
        status: UploadStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[Record]:
        where = ["owner = $1"]
        params: list[object] = [owner]
        if status is not None:
            params.append(status)
            where.append(f"status = ${len(params)}")
        if before is not None:
            params += [before[0], before[1]]
            where.append(f"(created, id) < (${len(params) - 1}, ${len(params)})")
        params.append(limit)
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(
                f"SELECT {_COLUMNS}, status FROM uploads WHERE {' AND '.join(where)}"
                f" ORDER BY created DESC, id DESC LIMIT ${len(params)}",
                *params,
            )
            forwards = await self._forwards(conn, [row["id"] for row in rows])
        return [
            Record(_row_to_upload(row), _status(row["status"]), forwards.get(row["id"], ()))
            for row in rows
        ]

    @staticmethod
    async def _forwards(conn: Any, upload_ids: list[str]) -> dict[str, tuple[Forward, ...]]:
        if not upload_ids:
            return {}
        rows = await conn.fetch(
            f"SELECT {_FORWARD_COLUMNS} FROM forwards WHERE upload_id = ANY($1::text[])"
            " ORDER BY upload_id, position",
            upload_ids,
        )
        found: dict[str, list[Forward]] = {}
        for row in rows:
            found.setdefault(row["upload_id"], []).append(_row_to_forward(row))
        return {upload_id: tuple(forwards) for upload_id, forwards in found.items()}

    async def save_forward(self, forward: Forward, status: UploadStatus) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # The upload's row lock orders two replicas saving forwards of one upload.
            found = await conn.fetchval(
                "SELECT 1 FROM uploads WHERE id = $1 FOR UPDATE", forward.upload_id
            )
            if found is None:
                return
            await conn.execute(
                "INSERT INTO forwards (upload_id, target, position, state, attempts, error,"
                " file_name, file_uri) VALUES ($1, $2, (SELECT count(*) FROM forwards"
                " WHERE upload_id = $1), $3, $4, $5, $6, $7)"
                " ON CONFLICT (upload_id, target) DO UPDATE SET state = EXCLUDED.state,"
                " attempts = EXCLUDED.attempts, error = EXCLUDED.error,"
                " file_name = EXCLUDED.file_name, file_uri = EXCLUDED.file_uri",
                forward.upload_id,
                forward.target,
                forward.state,
                forward.attempts,
                forward.error,
                forward.file_name,
                forward.file_uri,
            )
            await conn.execute(
                "UPDATE uploads SET status = $1 WHERE id = $2", status, forward.upload_id
            )

    async def unfinished_forwards(self, limit: int = 1000) -> list[Forward]:
        rows = await self._pool.fetch(
            f"SELECT {', '.join('f.' + c for c in _FORWARD_COLUMNS.split(', '))}"
            " FROM forwards f JOIN uploads u ON u.id = f.upload_id"
            " WHERE f.state IN ('pending', 'running')"
            " ORDER BY u.created, f.upload_id, f.position LIMIT $1",
            limit,
        )
        return [_row_to_forward(row) for row in rows]

    async def forwarded(self, sha256: str, target: str) -> Forward | None:
        row = await self._pool.fetchrow(
            f"SELECT {', '.join('f.' + c for c in _FORWARD_COLUMNS.split(', '))}"
            " FROM forwards f JOIN uploads u ON u.id = f.upload_id"
            " WHERE u.sha256 = $1 AND f.target = $2 AND f.state = 'done'"
            " ORDER BY u.created DESC LIMIT 1",
            sha256,
            target,
        )
        return None if row is None else _row_to_forward(row)

    async def usage(self, owner: str) -> Usage:
        row = await self._pool.fetchrow(
            "SELECT count(*) FILTER (WHERE NOT completed) AS unfinished,"
            " COALESCE(sum(upload_offset), 0) AS stored FROM uploads WHERE owner = $1",
            owner,
        )
        assert row is not None
        return Usage(unfinished=int(row["unfinished"]), stored_bytes=int(row["stored"]))

    async def ping(self) -> None:
        """Raise if the database cannot answer (the readiness probe)."""
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
