"""Where sessions live: a directory of JSON files (the client default) or SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SessionError
from .session import UploadSession

if TYPE_CHECKING:
    import aiosqlite

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def check_session_id(session_id: str) -> str:
    """Session ids become file names: letters, digits, `._-` only."""
    if not _SAFE_ID.match(session_id) or session_id in (".", ".."):
        raise SessionError(
            f"session id {session_id[:40]!r} may only hold letters, digits, '.', '_' and '-'"
        )
    return session_id


class SessionStore(ABC):
    """Persistence for sessions; every write is atomic."""

    @abstractmethod
    async def save(self, session: UploadSession) -> None: ...

    @abstractmethod
    async def load(self, session_id: str) -> UploadSession | None: ...

    @abstractmethod
    async def delete(self, session_id: str) -> bool: ...

    @abstractmethod
    async def list(self) -> list[UploadSession]: ...

    async def close(self) -> None:
        return None

    async def sweep(self, before: float) -> int:
        """Remove debris of writes that never finished (a kill mid-save) older than `before`
        (a POSIX timestamp); returns how many."""
        return 0


class JsonSessionStore(SessionStore):
    """One `<session_id>.json` per session (the seed's format), written temp + fsync + rename,
    so a reader in another process sees the old or the new file, never half of one."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{check_session_id(session_id)}.json"

    def _save_sync(self, data: dict[str, Any], path: Path) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def save(self, session: UploadSession) -> None:
        try:
            await asyncio.to_thread(
                self._save_sync, session.to_dict(), self._path(session.session_id)
            )
        except OSError as exc:
            raise SessionError(
                f"cannot write session to {self.directory}: {exc.strerror}"
            ) from None

    def _load_sync(self, path: Path) -> dict[str, Any] | None:
        try:
            with path.open(encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise SessionError(f"session file {path} is unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise SessionError(f"session file {path} is not a session")
        return data

    async def load(self, session_id: str) -> UploadSession | None:
        data = await asyncio.to_thread(self._load_sync, self._path(session_id))
        return UploadSession.from_dict(data) if data is not None else None

    async def delete(self, session_id: str) -> bool:
        path = self._path(session_id)

        def unlink() -> bool:
            try:
                path.unlink()
                return True
            except FileNotFoundError:
                return False

        return await asyncio.to_thread(unlink)

    async def sweep(self, before: float) -> int:
        def remove_stale() -> int:
            removed = 0
            for p in self.directory.glob(".tmp-*.json") if self.directory.is_dir() else ():
                with contextlib.suppress(OSError):
                    if p.stat().st_mtime < before:
                        p.unlink()
                        removed += 1
            return removed

        return await asyncio.to_thread(remove_stale)

    async def list(self) -> list[UploadSession]:
        def read_all() -> list[dict[str, Any]]:
            if not self.directory.is_dir():
                return []
            out = []
            for p in sorted(self.directory.glob("*.json")):
                if p.name.startswith(".tmp-"):
                    continue
                with contextlib.suppress(SessionError):
                    data = self._load_sync(p)
                    if data is not None:
                        out.append(data)
            return out

        sessions = []
        for data in await asyncio.to_thread(read_all):
            with contextlib.suppress(SessionError):
                sessions.append(UploadSession.from_dict(data))
        return sessions


class SqliteSessionStore(SessionStore):
    """Sessions as rows of one SQLite table; each save is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _conn(self) -> aiosqlite.Connection:
        async with self._lock:
            if self._db is None:
                # Imported here, in a thread (an import reads files): the JSON store, the
                # client's default, never needs SQLite.
                sqlite: Any = await asyncio.to_thread(importlib.import_module, "aiosqlite")
                await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
                db: aiosqlite.Connection = await sqlite.connect(self.path)
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA busy_timeout=5000")
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS sessions ("
                    " session_id TEXT PRIMARY KEY, expires_at TEXT NOT NULL, data TEXT NOT NULL)"
                )
                await db.commit()
                self._db = db
            return self._db

    async def save(self, session: UploadSession) -> None:
        db = await self._conn()
        await db.execute(
            "INSERT INTO sessions (session_id, expires_at, data) VALUES (?, ?, ?)"
            " ON CONFLICT(session_id) DO UPDATE"
            " SET expires_at = excluded.expires_at, data = excluded.data",
            (
                check_session_id(session.session_id),
                session.expires_at.isoformat(),
                json.dumps(session.to_dict()),
            ),
        )
        await db.commit()

    async def load(self, session_id: str) -> UploadSession | None:
        db = await self._conn()
        async with db.execute(
            "SELECT data FROM sessions WHERE session_id = ?", (session_id,)
        ) as cur:
            row = await cur.fetchone()
        return UploadSession.from_dict(json.loads(row[0])) if row else None

    async def delete(self, session_id: str) -> bool:
        db = await self._conn()
        cur = await db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        await db.commit()
        return (cur.rowcount or 0) > 0

    async def list(self) -> list[UploadSession]:
        db = await self._conn()
        async with db.execute("SELECT data FROM sessions ORDER BY session_id") as cur:
            rows = await cur.fetchall()
        return [UploadSession.from_dict(json.loads(r[0])) for r in rows]

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()


def open_store(location: Path) -> SessionStore:
    """A `.db`/`.sqlite` path is SQLite; anything else is a directory of JSON files."""
    if location.suffix in (".db", ".sqlite", ".sqlite3"):
        return SqliteSessionStore(location)
    return JsonSessionStore(location)
