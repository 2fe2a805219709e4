"""Forwarding: each finished upload is sent on to the `--forward` targets by the engine.

Each (upload, target) is a journaled `Forward` in the state store: pending → running →
done / failed / deduped. The engine's own session (under the data directory) remembers how
far the bytes got, so a restarted server resumes a running forward where it stood. A failed
attempt is retried with exponential backoff, each retry visible in the record. Several
targets are sent from the one stored copy at once (fan-out). A file whose SHA-256 the catalog
already forwarded to a target that still has it is not sent again (dedupe).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import aiohttp

from ...errors import UpwellError
from ...progress import UploadProgress
from ...sessions.manager import SessionManager
from ...targets.base import RemoteFile, Target
from ...targets.http import new_session
from ..state import Forward, StateStore, Upload, UploadStatus
from ..uploads import Uploads
from .records import filename_of

log = logging.getLogger("upwell.server")

Publish = Callable[[Upload, UploadProgress | None, str], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ForwardTarget:
    """A `--forward` target: the name it was given (journaled) and the target it resolved to."""

    name: str
    target: Target


@dataclass(frozen=True)
class ForwardPolicy:
    """How hard forwarding tries: attempts per target, backoff between them, and how many
    forwards run at once."""

    max_attempts: int = 5
    backoff: float = 2.0  # seconds before the second attempt; doubles after each failure
    max_backoff: float = 300.0
    concurrency: int = 4
    engine_retries: int | None = None  # retries of one request inside an attempt (engine's)
    chunk_size: int | None = None  # bytes per request to the target (None: by file size)


class ForwardClaims(Protocol):
    """Which replica forwards an upload, when several share one state store."""

    #: Seconds between looks for unfinished forwards that no replica holds (a dead one's).
    rescan_seconds: float

    def claim(self, upload_id: str) -> AbstractAsyncContextManager[bool]:
        """Hold the upload's forwards for this replica while the block runs (True), or find
        another replica holding them (False); a claim dies with the replica that held it."""


def status_of(forwards: Sequence[Forward]) -> UploadStatus:
    """A stored upload's status from its forwards."""
    states = {f.state for f in forwards}
    if not states:
        return "stored"
    if states & {"pending", "running"}:
        return "forwarding"
    if "failed" in states:
        return "failed"
    return "forwarded"


class Forwarder:
    """Runs forwards in the background; `publish` is told of progress and record changes."""

    def __init__(
        self,
        targets: Sequence[ForwardTarget],
        state: StateStore,
        uploads: Uploads,
        session_dir: Path,
        publish: Publish,
        policy: ForwardPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        on_attempt: Callable[[str, bool], None] | None = None,
        claims: ForwardClaims | None = None,
    ) -> None:
        from ...uploaders import ResumableUploader

        self.targets = {t.name: t for t in targets}
        self._state = state
        self._uploads = uploads
        self._publish = publish
        self.policy = policy or ForwardPolicy()
        self._sleep = sleep
        self._on_attempt = on_attempt or (lambda target, ok: None)
        self._sessions = SessionManager(session_dir)
        # Uploads that are not one local file (assembled from parts, or in object storage) are
        # copied here once, whole, before they are forwarded; the copy goes with their forwards.
        self._staging = session_dir / "staged"
        self._uploaders = {
            t.name: ResumableUploader(
                target=t.target,
                session_manager=self._sessions,
                max_retries=self.policy.engine_retries,
                chunk_size=self.policy.chunk_size,
            )
            for t in targets
        }
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http: aiohttp.ClientSession | None = None
        self._claims = claims
        self._rescan: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    async def start(self) -> None:
        """Open the HTTP pools and resume the forwards a previous run left unfinished."""
        if not self.enabled:
            return
        self._http = new_session(connections=8, connect_timeout=30.0, read_timeout=60.0)
        for uploader in self._uploaders.values():
            await uploader.open()
        await self._resume_unfinished()
        if self._claims is not None:
            self._rescan = asyncio.create_task(self._rescan_loop(), name="upwell-forward-rescan")

    async def _rescan_loop(self) -> None:
        """Pick up forwards whose replica died (their claims went with it)."""
        assert self._claims is not None
        while True:
            await self._sleep(self._claims.rescan_seconds)
            try:
                await self._resume_unfinished(quiet=True)
            except Exception:
                log.warning("looking for unfinished forwards failed", exc_info=True)

    async def _resume_unfinished(self, quiet: bool = False) -> None:
        for forward in await self._state.unfinished_forwards():
            if forward.target not in self.targets:
                if quiet:
                    continue
                log.warning(
                    "forward of %s to %r: that target is no longer configured; left pending",
                    forward.upload_id,
                    forward.target,
                )
                continue
            self._spawn(forward.upload_id, forward.target)

    async def _source_file(self, upload: Upload) -> Path:
        """A local file with the upload's bytes: the upload's own when it is one file, else a
        copy staged once (written aside, then renamed in, so a copy cut short is never used)."""
        segments = await self._uploads.segments(upload.id)
        if segments is not None and len(segments) == 1:
            return segments[0]
        staged = self._staging / upload.id
        if await asyncio.to_thread(_has_size, staged, upload.offset):
            return staged
        partial = staged.with_name(f"{upload.id}.partial")
        await asyncio.to_thread(self._staging.mkdir, parents=True, exist_ok=True)
        out = await asyncio.to_thread(open, partial, "wb")
        try:
            async for piece in self._uploads.read(upload, 0, upload.offset):
                await asyncio.to_thread(out.write, piece)
            await asyncio.to_thread(out.flush)
        finally:
            await asyncio.to_thread(out.close)
        await asyncio.to_thread(partial.replace, staged)
        return staged

    async def close(self) -> None:
        """Stop running forwards (their journal keeps them resumable) and close pools."""
        if self._rescan is not None:
            self._rescan.cancel()
            await asyncio.gather(self._rescan, return_exceptions=True)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for uploader in self._uploaders.values():
            await uploader.close()
        await self._sessions.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def enqueue(self, upload: Upload, names: Sequence[str] | None = None) -> list[str]:
        """Journal forwards of a complete upload (to `names`, default all) and start them."""
        chosen = list(self.targets) if names is None else [n for n in names if n in self.targets]
        if not chosen or not upload.completed or upload.concat == "partial":
            return []
        async with self._lock(upload.id):
            record = await self._state.record(upload.id)
            if record is None:
                return []
            known = {f.target for f in record.forwards}
            forwards = list(record.forwards)
            for name in chosen:
                if name in known:
                    continue
                forward = Forward(upload_id=upload.id, target=name)
                forwards.append(forward)
                await self._state.save_forward(forward, status_of(forwards))
        await self._publish(upload, None, "")
        for name in chosen:
            self._spawn(upload.id, name)
        return chosen

    async def cancel(self, upload_id: str) -> None:
        """Stop the upload's forwards (it is being deleted)."""
        tasks = [t for (uid, _), t in self._tasks.items() if uid == upload_id]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in self.targets:
            await self._sessions.delete_session(_session_id(upload_id, name))
        await asyncio.to_thread(_remove, self._staging / upload_id)

    async def wait(self) -> None:
        """Until no forward is running (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def _spawn(self, upload_id: str, name: str) -> None:
        key = (upload_id, name)
        if key in self._tasks:
            return
        task = asyncio.create_task(self._run(upload_id, name), name=f"upwell-forward-{name}")
        self._tasks[key] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            if not any(uid == upload_id for uid, _ in self._tasks):
                self._locks.pop(upload_id, None)
            if not t.cancelled() and t.exception() is not None:
                log.error("forward of %s to %r crashed", upload_id, name, exc_info=t.exception())

        task.add_done_callback(done)

    async def _save(self, forward: Forward) -> Upload | None:
        """Journal the forward's new state and tell subscribers; None if the upload is gone."""
        async with self._lock(forward.upload_id):
            record = await self._state.record(forward.upload_id)
            if record is None:
                return None
            forwards = [forward if f.target == forward.target else f for f in record.forwards]
            await self._state.save_forward(forward, status_of(forwards))
        await self._publish(record.upload, None, forward.target)
        return record.upload

    def _claim(self, upload_id: str) -> AbstractAsyncContextManager[bool]:
        # One server alone: every forward is its own.
        return self._claims.claim(upload_id) if self._claims is not None else nullcontext(True)

    async def _run(self, upload_id: str, name: str) -> None:
        async with self._slots, self._claim(upload_id) as mine:
            if not mine:
                return  # another replica forwards this upload
            record = await self._state.record(upload_id)
            if record is None:
                return
            forward = next((f for f in record.forwards if f.target == name), None)
            if forward is None or forward.state not in ("pending", "running"):
                return
            upload = record.upload
            delay = self.policy.backoff
            while True:
                forward = replace(forward, state="running", attempts=forward.attempts + 1)
                if await self._save(forward) is None:
                    return
                try:
                    done = await self._attempt(upload, forward)
                except UpwellError as exc:
                    done, error = None, str(exc)
                except OSError as exc:
                    done, error = None, f"the stored file cannot be read: {exc.strerror or exc}"
                else:
                    error = ""
                self._on_attempt(name, done is not None)
                if done is not None:
                    await self._save(done)
                    # The catalog keeps the outcome; the engine's journal is done with.
                    await self._sessions.delete_session(_session_id(upload_id, name))
                    return
                if forward.attempts >= self.policy.max_attempts:
                    await self._save(replace(forward, state="failed", error=error))
                    log.warning("forward of %s to %r failed: %s", upload_id, name, error)
                    return
                await self._save(
                    replace(
                        forward,
                        state="pending",
                        error=f"{error} (attempt {forward.attempts}; retrying in {delay:g} s)",
                    )
                )
                await self._sleep(delay)
                delay = min(delay * 2, self.policy.max_backoff)

    async def _attempt(self, upload: Upload, forward: Forward) -> Forward | None:
        """One try: dedupe, else send with the engine. The finished Forward, or None."""
        target = self.targets[forward.target]
        digest = await self._uploads.sha256(upload.id)
        if digest is not None:
            earlier = await self._state.forwarded(digest.hex(), forward.target)
            if earlier is not None and earlier.upload_id != upload.id and earlier.file_uri:
                assert self._http is not None
                remote = RemoteFile(earlier.file_uri, earlier.file_name or "", upload.offset)
                if await target.target.still_has(self._http, remote):
                    return replace(
                        forward,
                        state="deduped",
                        error=None,
                        file_name=earlier.file_name,
                        file_uri=earlier.file_uri,
                    )
        source = await self._source_file(upload)

        async def on_progress(p: UploadProgress) -> None:
            await self._publish(upload, p, forward.target)

        uploader = self._uploaders[forward.target]
        result = await uploader.upload_file_resumable(
            source,
            session_id=_session_id(upload.id, forward.target),
            display_name=filename_of(upload) or upload.id,
            progress_callback=on_progress,
        )
        if not result.success:
            raise UpwellError(result.error or "the forward failed")
        others = any(u == upload.id and t != forward.target for u, t in self._tasks)
        if source.parent == self._staging and not others:
            # The upload's last forward is done: its staged copy is not needed again.
            await asyncio.to_thread(_remove, source)
        return replace(
            forward,
            state="done",
            error=None,
            file_name=result.file_name,
            file_uri=result.file_uri,
        )


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _session_id(upload_id: str, target: str) -> str:
    """The engine session that journals the bytes of one forward."""
    return f"forward-{upload_id}-{_safe(target)}"


def _safe(name: str) -> str:
    """A target name as part of a session id (letters, digits, '._-')."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:40]
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
