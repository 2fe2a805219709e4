"""SessionManager: the seed's API over a store, with expiry and remote cleanup."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .session import UploadSession
from .store import SessionStore, open_store

Now = Callable[[], datetime]
RemoteCleanup = Callable[[UploadSession], Awaitable[None]]


def default_session_dir(env: dict[str, str] | None = None) -> Path:
    """$UPLOAD_SESSION_DIR, else the user's state directory ($XDG_STATE_HOME/upwell/sessions)."""
    env = dict(os.environ) if env is None else env
    if env.get("UPLOAD_SESSION_DIR"):
        return Path(env["UPLOAD_SESSION_DIR"])
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "upwell" / "sessions"


class SessionManager:
    """Save, load, list and clean up sessions. `now` is injectable, so expiry is tested
    without waiting; `remote_cleanup` ends what an expired session left at its target."""

    def __init__(
        self,
        store: SessionStore | Path | str | None = None,
        *,
        now: Now = lambda: datetime.now(UTC),
        remote_cleanup: RemoteCleanup | None = None,
    ) -> None:
        if store is None:
            store = default_session_dir()
        self.store = store if isinstance(store, SessionStore) else open_store(Path(store))
        self.now = now
        self.remote_cleanup = remote_cleanup
        self._save_lock = asyncio.Lock()

    async def save_session(self, session: UploadSession) -> None:
        """Persist a snapshot of `session`. Saves are serialised, so a slow older snapshot
        can never land after a newer one."""
        async with self._save_lock:
            session.touch(self.now())
            await self.store.save(session)

    async def load_session(self, session_id: str) -> UploadSession | None:
        return await self.store.load(session_id)

    async def delete_session(self, session_id: str) -> bool:
        return await self.store.delete(session_id)

    async def list_sessions(self) -> list[UploadSession]:
        return await self.store.list()

    async def cleanup_expired_sessions(self) -> int:
        """Delete expired sessions (and, unfinished ones, their remote partial uploads), and
        the temp files of saves a killed process never finished."""
        now = self.now()
        await self.store.sweep(before=(now - timedelta(hours=1)).timestamp())
        removed = 0
        for session in await self.store.list():
            if not session.is_expired(now):
                continue
            if self.remote_cleanup is not None and session.status != "complete":
                await self.remote_cleanup(session)
            if await self.store.delete(session.session_id):
                removed += 1
        return removed

    async def close(self) -> None:
        await self.store.close()
