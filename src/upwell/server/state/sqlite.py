"""`SQLiteStateStore`: the embedded default, one SQLite file under the data directory."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from . import Upload

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    upload_length INTEGER,
    upload_offset INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    concat TEXT,
    parts TEXT NOT NULL,
    completed INTEGER NOT NULL,
    sha256 TEXT
);
CREATE INDEX IF NOT EXISTS uploads_unfinished_expires ON uploads (expires) WHERE completed = 0;
"""
_COLUMNS = (
    "id, upload_length, upload_offset, metadata, created, expires, concat, parts, completed, sha256"
)


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _row_to_upload(row: sqlite3.Row | tuple[object, ...]) -> Upload:
    id_, length, offset, metadata, created, expires, concat, parts, _completed, sha256 = row
    assert isinstance(id_, str) and isinstance(offset, int) and isinstance(created, float)
    return Upload(
        id=id_,
        length=length if isinstance(length, int) else None,
        offset=offset,
        metadata=str(metadata),
        created=datetime.fromtimestamp(created, UTC),
        expires=_dt(expires if isinstance(expires, float) else None),
        concat="partial" if concat == "partial" else "final" if concat == "final" else None,
        parts=tuple(str(parts).split()),
        sha256=sha256 if isinstance(sha256, str) else None,
    )


class SQLiteStateStore:
    """Upload records in one SQLite file; every write is a durable transaction.

    synchronous=FULL in WAL mode: a committed offset survives a power cut, which is what the
    server promises when it answers a PATCH.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: Path) -> SQLiteStateStore:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.execute("PRAGMA busy_timeout=5000")
            await connection.executescript(_SCHEMA)
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def create(self, upload: Upload) -> None:
        await self._db.execute(
            f"INSERT INTO uploads ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                upload.id,
                upload.length,
                upload.offset,
                upload.metadata,
                upload.created.timestamp(),
                _ts(upload.expires),
                upload.concat,
                " ".join(upload.parts),
                int(upload.completed),
                upload.sha256,
            ),
        )

    async def get(self, upload_id: str) -> Upload | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE id = ?", (upload_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _row_to_upload(tuple(row))

    async def update(self, upload: Upload) -> None:
        await self._db.execute(
            "UPDATE uploads SET upload_length = ?, upload_offset = ?, expires = ?, completed = ?,"
            " sha256 = ? WHERE id = ?",
            (
                upload.length,
                upload.offset,
                _ts(upload.expires),
                int(upload.completed),
                upload.sha256,
                upload.id,
            ),
        )

    async def delete(self, upload_id: str) -> bool:
        async with self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)) as cursor:
            return cursor.rowcount > 0

    async def expired(self, now: datetime, limit: int = 1000) -> list[str]:
        async with self._db.execute(
            "SELECT id FROM uploads WHERE completed = 0 AND expires <= ? LIMIT ?",
            (now.timestamp(), limit),
        ) as cursor:
            return [str(row[0]) for row in await cursor.fetchall()]

    async def known(self, upload_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(upload_ids)
        for start in range(0, len(ids), 500):  # SQLite caps the number of parameters
            batch = ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            async with self._db.execute(
                f"SELECT id FROM uploads WHERE id IN ({marks})", batch
            ) as cursor:
                found.update(str(row[0]) for row in await cursor.fetchall())
        return found

    async def close(self) -> None:
        await self._db.close()
