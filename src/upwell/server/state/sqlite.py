"""`SQLiteStateStore`: the embedded default, one SQLite file under the data directory."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from . import Forward, ForwardState, Record, Upload, UploadStatus, Usage

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
CREATE TABLE IF NOT EXISTS forwards (
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
CREATE INDEX IF NOT EXISTS forwards_by_target_state ON forwards (target, state);
"""
# Catalog columns added after the first release; `open` adds them to older files.
_ADDED_COLUMNS = {
    "owner": "TEXT NOT NULL DEFAULT 'anonymous'",
    "status": "TEXT NOT NULL DEFAULT 'receiving'",
}
_INDEXES = """
CREATE INDEX IF NOT EXISTS uploads_by_owner ON uploads (owner, created DESC, id DESC);
CREATE INDEX IF NOT EXISTS uploads_by_sha256 ON uploads (sha256) WHERE sha256 IS NOT NULL;
"""
_COLUMNS = (
    "id, upload_length, upload_offset, metadata, created, expires, concat, parts, completed,"
    " sha256, owner"
)
_STATUS = frozenset({"receiving", "stored", "forwarding", "forwarded", "failed", "expired"})
_FORWARD_STATES = frozenset({"pending", "running", "done", "failed", "deduped"})
_FORWARD_COLUMNS = "upload_id, target, state, attempts, error, file_name, file_uri"


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _row_to_upload(row: sqlite3.Row | tuple[object, ...]) -> Upload:
    id_, length, offset, metadata, created, expires, concat, parts, _completed, sha256, owner = row
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
        owner=str(owner),
    )


def _status(value: object) -> UploadStatus:
    text = str(value)
    assert text in _STATUS, text
    return text  # type: ignore[return-value]


def _row_to_forward(row: sqlite3.Row | tuple[object, ...]) -> Forward:
    upload_id, target, state, attempts, error, file_name, file_uri = row
    assert str(state) in _FORWARD_STATES and isinstance(attempts, int)
    forward_state: ForwardState = str(state)  # type: ignore[assignment]
    return Forward(
        upload_id=str(upload_id),
        target=str(target),
        state=forward_state,
        attempts=attempts,
        error=None if error is None else str(error),
        file_name=None if file_name is None else str(file_name),
        file_uri=None if file_uri is None else str(file_uri),
    )


class SQLiteStateStore:
    """Upload records in one SQLite file; every write is a durable transaction.

    synchronous=FULL in WAL mode: a committed offset survives a power cut, which is what the
    server promises when it answers a PATCH.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # One connection: a transaction of several statements must not interleave with
        # another coroutine's statements, so every write takes this lock.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SQLiteStateStore:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.execute("PRAGMA busy_timeout=5000")
            await connection.execute("PRAGMA foreign_keys=ON")
            await connection.executescript(_SCHEMA)
            await _add_columns(connection)
            await connection.executescript(_INDEXES)
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def create(self, upload: Upload) -> None:
        async with self._lock:
            await self._db.execute(
                f"INSERT INTO uploads ({_COLUMNS}, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    upload.owner,
                    "stored" if upload.completed else "receiving",
                ),
            )

    async def get(self, upload_id: str) -> Upload | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS} FROM uploads WHERE id = ?", (upload_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _row_to_upload(tuple(row))

    async def update(self, upload: Upload) -> None:
        async with self._lock:
            await self._db.execute(
                "UPDATE uploads SET upload_length = ?, upload_offset = ?, expires = ?,"
                " completed = ?, sha256 = ?,"
                " status = CASE WHEN ? AND status = 'receiving' THEN 'stored' ELSE status END"
                " WHERE id = ?",
                (
                    upload.length,
                    upload.offset,
                    _ts(upload.expires),
                    int(upload.completed),
                    upload.sha256,
                    int(upload.completed),
                    upload.id,
                ),
            )

    async def delete(self, upload_id: str) -> bool:
        # The forwards go with it (ON DELETE CASCADE).
        async with (
            self._lock,
            self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)) as cursor,
        ):
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

    async def record(self, upload_id: str) -> Record | None:
        async with self._db.execute(
            f"SELECT {_COLUMNS}, status FROM uploads WHERE id = ?", (upload_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        forwards = await self._forwards([upload_id])
        return Record(
            _row_to_upload(tuple(row)[:-1]), _status(row[-1]), forwards.get(upload_id, ())
        )

    async def records(
        self,
        owner: str,
        *,
        status: UploadStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[Record]:
        where = ["owner = ?"]
        params: list[object] = [owner]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            where.append("(created < ? OR (created = ? AND id < ?))")
            params += [before[0].timestamp(), before[0].timestamp(), before[1]]
        params.append(limit)
        async with self._db.execute(
            f"SELECT {_COLUMNS}, status FROM uploads WHERE {' AND '.join(where)}"
            " ORDER BY created DESC, id DESC LIMIT ?",
            params,
        ) as cursor:
            rows = [tuple(row) for row in await cursor.fetchall()]
        forwards = await self._forwards([str(row[0]) for row in rows])
        return [
            Record(_row_to_upload(row[:-1]), _status(row[-1]), forwards.get(str(row[0]), ()))
            for row in rows
        ]

    async def _forwards(self, upload_ids: list[str]) -> dict[str, tuple[Forward, ...]]:
        found: dict[str, list[Forward]] = {}
        for start in range(0, len(upload_ids), 500):
            batch = upload_ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            async with self._db.execute(
                f"SELECT {_FORWARD_COLUMNS} FROM forwards WHERE upload_id IN ({marks})"
                " ORDER BY upload_id, position",
                batch,
            ) as cursor:
                for row in await cursor.fetchall():
                    forward = _row_to_forward(tuple(row))
                    found.setdefault(forward.upload_id, []).append(forward)
        return {upload_id: tuple(forwards) for upload_id, forwards in found.items()}

    async def save_forward(self, forward: Forward, status: UploadStatus) -> None:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                await self._db.execute(
                    "INSERT INTO forwards (upload_id, target, position, state, attempts, error,"
                    " file_name, file_uri) VALUES (?, ?, (SELECT COUNT(*) FROM forwards"
                    " WHERE upload_id = ?), ?, ?, ?, ?, ?)"
                    " ON CONFLICT (upload_id, target) DO UPDATE SET state = excluded.state,"
                    " attempts = excluded.attempts, error = excluded.error,"
                    " file_name = excluded.file_name, file_uri = excluded.file_uri",
                    (
                        forward.upload_id,
                        forward.target,
                        forward.upload_id,
                        forward.state,
                        forward.attempts,
                        forward.error,
                        forward.file_name,
                        forward.file_uri,
                    ),
                )
                await self._db.execute(
                    "UPDATE uploads SET status = ? WHERE id = ?", (status, forward.upload_id)
                )
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def unfinished_forwards(self, limit: int = 1000) -> list[Forward]:
        async with self._db.execute(
            f"SELECT {', '.join('f.' + c for c in _FORWARD_COLUMNS.split(', '))}"
            " FROM forwards f JOIN uploads u ON u.id = f.upload_id"
            " WHERE f.state IN ('pending', 'running')"
            " ORDER BY u.created, f.upload_id, f.position LIMIT ?",
            (limit,),
        ) as cursor:
            return [_row_to_forward(tuple(row)) for row in await cursor.fetchall()]

    async def forwarded(self, sha256: str, target: str) -> Forward | None:
        async with self._db.execute(
            f"SELECT {', '.join('f.' + c for c in _FORWARD_COLUMNS.split(', '))}"
            " FROM forwards f JOIN uploads u ON u.id = f.upload_id"
            " WHERE u.sha256 = ? AND f.target = ? AND f.state = 'done'"
            " ORDER BY u.created DESC LIMIT 1",
            (sha256, target),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _row_to_forward(tuple(row))

    async def usage(self, owner: str) -> Usage:
        async with self._db.execute(
            "SELECT COALESCE(SUM(1 - completed), 0), COALESCE(SUM(upload_offset), 0)"
            " FROM uploads WHERE owner = ?",
            (owner,),
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return Usage(unfinished=int(row[0]), stored_bytes=int(row[1]))

    async def close(self) -> None:
        await self._db.close()


async def _add_columns(connection: aiosqlite.Connection) -> None:
    async with connection.execute("PRAGMA table_info(uploads)") as cursor:
        present = {str(row[1]) for row in await cursor.fetchall()}
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in present:
            await connection.execute(f"ALTER TABLE uploads ADD COLUMN {name} {declaration}")
            if name == "status":
                await connection.execute("UPDATE uploads SET status = 'stored' WHERE completed = 1")
