"""The seed's three layers as thin front ends over one engine.

`ChunkedUploader` sends one chunk at a time; `ParallelUploader` adds parallel parts, many
files at once and streaming progress. (`ResumableUploader`, the polish layer, builds on these.)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from .config import Settings, parse_rate, parse_size
from .engine.pipeline import Journal, Outcome, Pipeline, Throttle
from .engine.planner import Plan, plan_upload
from .engine.retry import RetryPolicy, Sleep
from .engine.throttle import AdaptiveBandwidthThrottle, BandwidthThrottle
from .errors import FileChangedError, SourceError, UploadGone, UpwellError
from .progress import ProgressCallback, ProgressTracker, UploadProgress
from .results import ChunkMetadata, UploadResult
from .sessions.manager import SessionManager, default_session_dir
from .sessions.session import DEFAULT_EXPIRY, UploadSession, derive_session_id
from .sessions.store import check_session_id
from .targets.base import RemoteFile, SourceInfo, Target
from .targets.http import new_session
from .targets.resolve import resolve_target


@dataclass(frozen=True)
class FileKey:
    """A file as it is (resolved path, size, mtime) and where it goes: what resume keys on."""

    path: Path
    size: int
    mtime_ns: int
    target: str


def new_task_id() -> str:
    return f"upload_{secrets.token_hex(6)}"


class ChunkedUploader:
    """Foundation layer: chunked upload of one file at a time, one chunk after another.

    `target` is a tus endpoint URL or a Target; `chunk_size=None` picks by file size.
    Use it as `async with` to share one connection pool across calls.
    """

    def __init__(
        self,
        api_key: str | None = None,
        chunk_size: int | None = None,
        max_retries: int | None = None,
        *,
        target: str | Target | None = None,
        settings: Settings | None = None,
        throttle: Throttle | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        base = settings or Settings.from_env()
        if chunk_size is not None:
            base = replace(base, chunk_size=parse_size(chunk_size, what="chunk size"))
        if max_retries is not None:
            base = replace(base, limits=replace(base.limits, max_retries=max_retries))
        self.settings = base
        if target is None and settings is not None:
            target = settings.target
        self.target: Target = resolve_target(target, api_key)
        self.chunk_size = base.chunk_size
        self.max_retries = base.limits.max_retries
        self.progress_tracker = ProgressTracker()
        self._throttle = throttle
        self._compress = False
        # Cancelling ends the remote upload, unless a session keeps it for a later resume.
        self._abort_on_cancel = True
        self._sleep = sleep
        self._http: aiohttp.ClientSession | None = None
        self._owned_http = 0
        # In-process resume: what a failed upload left at the target, by file and target.
        self._unfinished: dict[FileKey, dict[str, Any]] = {}
        self._background: set[asyncio.Future[Any]] = set()

    # -- pooling ------------------------------------------------------------------------
    @property
    def _max_parallel(self) -> int:
        return 1

    @property
    def _adaptive(self) -> bool:
        """Whether the streams of a file follow the measured rate (`--parallel auto`)."""
        return False

    def _connections(self) -> int:
        return max(4, self._max_parallel * self.settings.limits.max_files + 2)

    async def __aenter__(self) -> ChunkedUploader:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the pooled HTTP session now (it is otherwise opened per call)."""
        if self._http is None:
            self._http = new_session(
                connections=self._connections(),
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.request_timeout,
            )
        self._owned_http += 1

    async def close(self) -> None:
        self._owned_http = max(0, self._owned_http - 1)
        if self._owned_http == 0 and self._http is not None:
            http, self._http = self._http, None
            try:
                await self.target.close()
            finally:
                await http.close()

    # -- the work -------------------------------------------------------------------------
    async def _file_key(self, path: Path) -> FileKey | None:
        """The file as it is now, for this target (one stat, in a thread); None if missing."""

        def stat() -> FileKey | None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return FileKey(path.resolve(), st.st_size, st.st_mtime_ns, self.target.url)

        return await asyncio.to_thread(stat)

    def _listen(self, callback: ProgressCallback, task_id: str) -> Any:
        if callback is None:
            return None

        def listener(p: UploadProgress) -> None:
            if p.task_id != task_id:
                return
            result = callback(p)
            if inspect.isawaitable(result):
                fut = asyncio.ensure_future(result)
                self._background.add(fut)
                fut.add_done_callback(self._background.discard)

        self.progress_tracker.add_listener(listener)
        return listener

    async def _upload(
        self,
        file_path: str | os.PathLike[str],
        display_name: str | None,
        progress_callback: ProgressCallback,
        task_id: str | None = None,
        session_id: str | None = None,
    ) -> UploadResult:
        path = Path(file_path)
        task_id = task_id or new_task_id()
        listener = self._listen(progress_callback, task_id)
        await self.open()
        try:
            assert self._http is not None
            key = await self._file_key(path)
            size = key.size if key else 0
            self.progress_tracker.create_task(task_id, size, file_path=str(path))
            try:
                result = await self._transfer(path, key, display_name, task_id, session_id)
            except (UpwellError, OSError) as exc:
                message = (
                    str(exc) if isinstance(exc, UpwellError) else f"{path}: {exc.strerror or exc}"
                )
                self.progress_tracker.fail_task(task_id, message)
                return UploadResult(
                    success=False,
                    file_path=str(path),
                    total_size=size,
                    error=message,
                    error_type=type(exc).__name__,
                    session_id=session_id,
                )
            self.progress_tracker.complete_task(
                task_id,
                result.file_uri,
                message=f"Uploaded {path.name}",
                file_name=result.file_name,
            )
            return result
        finally:
            if listener is not None:
                self.progress_tracker.remove_listener(listener)
            await self.close()

    async def _run_pipeline(
        self,
        path: Path,
        task_id: str,
        display_name: str | None,
        journal: Journal,
        *,
        chunk_size: int | None = None,
        max_parallel: int | None = None,
    ) -> Outcome:
        assert self._http is not None
        pipeline = Pipeline(
            self._http,
            self.target,
            chunk_size=chunk_size or self.chunk_size,
            max_parallel=max_parallel or self._max_parallel,
            adaptive=self._adaptive,
            retry=RetryPolicy(max_retries=self.max_retries),
            throttle=self._throttle,
            compress=self._compress,
            sleep=self._sleep,
        )
        return await pipeline.run(
            path,
            self.progress_tracker,
            task_id,
            display_name=display_name,
            journal=journal,
            abort_on_cancel=self._abort_on_cancel,
        )

    async def _transfer(
        self,
        path: Path,
        key: FileKey | None,
        display_name: str | None,
        task_id: str,
        session_id: str | None,
    ) -> UploadResult:
        """Upload, resuming in-process what an earlier call of this uploader left unfinished."""

        async def remember(state: dict[str, Any], plan: Plan) -> None:
            if key:
                self._unfinished[key] = state

        earlier = self._unfinished.get(key) if key else None
        journal = Journal(resume_state=earlier, on_state=remember)
        outcome = await self._run_pipeline(path, task_id, display_name, journal)
        if key:
            self._unfinished.pop(key, None)
        return self._result(path, outcome)

    @staticmethod
    def _result(path: Path, outcome: Outcome) -> UploadResult:
        return UploadResult(
            success=True,
            file_path=str(path),
            file_uri=outcome.remote.uri,
            file_name=outcome.remote.name,
            total_size=outcome.plan.file_size,
            upload_duration=outcome.duration,
            chunks_uploaded=sum(1 for c in outcome.chunks if c.uploaded),
            total_chunks=len(outcome.chunks),
            sha256=outcome.sha256,
            bytes_sent=outcome.bytes_sent,
            bytes_on_wire=outcome.bytes_on_wire,
            chunks=outcome.chunks,
            extra=outcome.remote.extra,
        )

    async def upload_file(
        self,
        file_path: str | os.PathLike[str],
        display_name: str | None = None,
        progress_callback: ProgressCallback = None,
    ) -> UploadResult:
        """Upload one file; never raises for an upload failure: see `result.error`."""
        return await self._upload(file_path, display_name, progress_callback)

    async def upload_files(
        self,
        file_paths: Iterable[str | os.PathLike[str]],
        progress_callback: ProgressCallback = None,
    ) -> list[UploadResult]:
        """Upload many files at once (at most `max_files` at a time), over one pool."""
        sem = asyncio.Semaphore(self.settings.limits.max_files)

        async def one(p: str | os.PathLike[str]) -> UploadResult:
            async with sem:
                return await self._upload(p, None, progress_callback)

        await self.open()
        try:
            return list(await asyncio.gather(*(one(p) for p in file_paths)))
        finally:
            await self.close()


class ParallelUploader(ChunkedUploader):
    """Feature layer: parallel parts where the target allows, streaming progress, many files."""

    def __init__(
        self,
        api_key: str | None = None,
        chunk_size: int | None = None,
        max_retries: int | None = None,
        max_parallel: int | None = None,
        *,
        target: str | Target | None = None,
        settings: Settings | None = None,
        max_files: int | None = None,
        throttle: Throttle | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            api_key,
            chunk_size,
            max_retries,
            target=target,
            settings=settings,
            throttle=throttle,
            sleep=sleep,
        )
        limits = self.settings.limits
        self.max_parallel = max(
            1, max_parallel if max_parallel is not None else limits.max_parallel
        )
        limits = replace(
            limits,
            max_parallel=self.max_parallel,
            adaptive=limits.adaptive and max_parallel is None,
        )
        if max_files is not None:
            limits = replace(limits, max_files=max(1, max_files))
        self.settings = replace(self.settings, limits=limits)

    @property
    def _max_parallel(self) -> int:
        return self.max_parallel

    @property
    def _adaptive(self) -> bool:
        return self.settings.limits.adaptive

    async def upload_file_parallel(
        self, file_path: str | os.PathLike[str], display_name: str | None = None
    ) -> UploadResult:
        """Upload one file, its parts in parallel where the target allows."""
        return await self._upload(file_path, display_name, None)

    async def upload_file_streaming(
        self,
        file_path: str | os.PathLike[str],
        display_name: str | None = None,
        task_id: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Upload one file, yielding StreamingProgress dicts; the last is `complete` or `failed`."""
        task_id = task_id or new_task_id()
        queue: asyncio.Queue[UploadProgress | None] = asyncio.Queue()
        job = asyncio.ensure_future(
            self._upload(file_path, display_name, queue.put_nowait, task_id)
        )
        job.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield item.to_dict()
            await job
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)


class ResumableUploader(ParallelUploader):
    """Polish layer: sessions that survive restarts, bandwidth limits, integrity checks.

    Without a session id, the id derives from the file (path, size, mtime) and the target, so
    the same call after a crash resumes by itself; the target is asked what it holds.
    """

    def __init__(
        self,
        api_key: str | None = None,
        chunk_size: int | None = None,
        max_retries: int | None = None,
        max_parallel: int | None = None,
        bandwidth_limit: int | str | None = None,
        compression_enabled: bool = True,
        session_dir: Path | str | None = None,
        *,
        target: str | Target | None = None,
        settings: Settings | None = None,
        max_files: int | None = None,
        session_expiry: timedelta = DEFAULT_EXPIRY,
        session_manager: SessionManager | None = None,
        throttle: Throttle | None = None,
        adaptive_throttle: bool = False,
        resume: bool = True,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            api_key,
            chunk_size,
            max_retries,
            max_parallel,
            target=target,
            settings=settings,
            max_files=max_files,
            sleep=sleep,
        )
        rate = parse_rate(bandwidth_limit) if bandwidth_limit else self.settings.bandwidth_limit
        self.bandwidth_limit = rate
        if throttle is None and rate:
            throttle = (AdaptiveBandwidthThrottle if adaptive_throttle else BandwidthThrottle)(rate)
        self._throttle = throttle
        self.compression_enabled = compression_enabled
        self._compress = compression_enabled
        self._abort_on_cancel = False
        self.session_expiry = session_expiry
        self.resume = resume
        self.session_manager = session_manager or SessionManager(
            Path(session_dir)
            if session_dir
            else self.settings.session_dir or default_session_dir(),
            remote_cleanup=self._end_remote,
        )
        self._cleanup_task: asyncio.Task[None] | None = None

    # -- lifecycle: hourly cleanup while open -------------------------------------------
    async def __aenter__(self) -> ResumableUploader:
        await self.open()
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.ensure_future(self._cleanup_loop())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            await asyncio.gather(self._cleanup_task, return_exceptions=True)
            self._cleanup_task = None
        await self.close()

    async def _cleanup_loop(self, interval: float = 3600.0) -> None:
        while True:
            with contextlib.suppress(UpwellError):
                await self.session_manager.cleanup_expired_sessions()
            await self._sleep(interval)

    def set_bandwidth_limit(self, rate: int) -> None:
        """Change the rate of running and future uploads."""
        if self._throttle is None:
            self._throttle = BandwidthThrottle(rate)
        elif isinstance(self._throttle, BandwidthThrottle):
            self._throttle.set_rate(rate)
        self.bandwidth_limit = rate

    # -- the seed's API -------------------------------------------------------------------
    async def upload_file_resumable(
        self,
        file_path: str | os.PathLike[str],
        session_id: str | None = None,
        display_name: str | None = None,
        progress_callback: ProgressCallback = None,
    ) -> UploadResult:
        """Upload, or resume the session `session_id` (derived from the file when None)."""
        return await self._upload(file_path, display_name, progress_callback, session_id=session_id)

    async def create_session(
        self, file_path: Path | str, session_id: str, bandwidth_limit: int | None = None
    ) -> UploadSession:
        """A new session for `file_path` (saved now; chunks are planned on first upload)."""
        check_session_id(session_id)
        path = Path(file_path)

        def stat() -> os.stat_result:
            try:
                return os.stat(path)
            except FileNotFoundError:
                raise SourceError(f"{path}: no such file") from None

        st = await asyncio.to_thread(stat)
        now = self.session_manager.now()
        session = UploadSession(
            session_id=session_id,
            file_path=await asyncio.to_thread(path.resolve),
            file_size=st.st_size,
            file_checksum="",
            chunk_size=0,
            total_chunks=0,
            chunks_completed=[],
            chunks_metadata=[],
            created_at=now,
            updated_at=now,
            expires_at=now + self.session_expiry,
            compression_enabled=self.compression_enabled,
            bandwidth_limit=bandwidth_limit or self.bandwidth_limit,
            target=self.target.url,
            file_mtime_ns=st.st_mtime_ns,
        )
        await self.session_manager.save_session(session)
        return session

    async def resume_session(self, session_id: str) -> UploadSession | None:
        """The session, if it exists and has not expired (an expired one is cleaned up)."""
        session = await self.session_manager.load_session(check_session_id(session_id))
        if session is None:
            return None
        if session.is_expired(self.session_manager.now()):
            if session.status != "complete":
                await self._end_remote(session)
            await self.session_manager.delete_session(session_id)
            return None
        return session

    async def get_session_status(self, session_id: str) -> dict[str, Any] | None:
        session = await self.session_manager.load_session(check_session_id(session_id))
        if session is None:
            return None
        return {
            "session_id": session.session_id,
            "status": session.status,
            "progress_percentage": session.get_progress_percentage(),
            "file_path": str(session.file_path),
            "file_size": session.file_size,
            "chunks_completed": len(session.chunks_completed),
            "total_chunks": session.total_chunks,
            "target": session.target,
            "file_uri": session.file_uri,
            "created_at": session.created_at.isoformat(),
            "updated_at": session.updated_at.isoformat(),
            "expires_at": session.expires_at.isoformat(),
            "error": session.error,
        }

    # -- the work -------------------------------------------------------------------------
    async def _transfer(
        self,
        path: Path,
        key: FileKey | None,
        display_name: str | None,
        task_id: str,
        session_id: str | None,
    ) -> UploadResult:
        if key is None:
            await asyncio.to_thread(_stat_or_raise, path)  # raises why the file is unusable
            raise SourceError(f"{path}: cannot be read")
        sid = session_id or derive_session_id(key.path, key.size, key.mtime_ns, key.target)
        session = await self.resume_session(sid) if self.resume else None
        if session is not None and (
            session.file_size != key.size
            or session.file_mtime_ns != key.mtime_ns
            or session.file_path != key.path
            or session.target != key.target
        ):
            self.progress_tracker.update_progress(
                task_id,
                message="The file changed since the last run: starting a new upload",
                force=True,
            )
            await self._discard(session)
            session = None
        if session is not None and session.status == "complete" and session.file_uri:
            if await self._still_there(session):
                return self._session_result(path, session)
            self.progress_tracker.update_progress(
                task_id, message="The target no longer has the file: uploading again", force=True
            )
            await self.session_manager.delete_session(session.session_id)
            session = None
        for attempt in range(2):
            if session is None:
                session = await self.create_session(path, sid)
            resumed = bool(session.target_state)
            try:
                outcome = await self._run_session(path, display_name, task_id, session)
            except (FileChangedError, UploadGone) as exc:
                if attempt == 0 and resumed:
                    # What the earlier run left is unusable: start over, once.
                    self.progress_tracker.update_progress(
                        task_id, message=f"Cannot resume ({exc}); starting over", force=True
                    )
                    await self._discard(session)
                    session = None
                    continue
                await self._fail(session, exc)
                raise
            except UpwellError as exc:
                await self._fail(session, exc)
                raise
            except asyncio.CancelledError:
                # Interrupted (Ctrl-C, a cancelled task): keep it resumable, and say so.
                session.status = "paused"
                session.error = "interrupted"
                with contextlib.suppress(UpwellError):
                    await asyncio.shield(self.session_manager.save_session(session))
                raise
            session.status = "complete"
            session.file_uri = outcome.remote.uri
            session.file_name = outcome.remote.name
            session.file_checksum = outcome.sha256
            session.error = None
            await self.session_manager.save_session(session)
            result = self._result(path, outcome)
            result.session_id = session.session_id
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_session(
        self, path: Path, display_name: str | None, task_id: str, session: UploadSession
    ) -> Outcome:
        completed = set(session.chunks_completed)
        checksums = {c.index: c.checksum for c in session.chunks_metadata if c.index in completed}
        session.status = "active"

        async def on_state(state: dict[str, Any], plan: Plan) -> None:
            if not session.chunks_metadata or session.chunk_size != plan.chunk_size:
                session.chunk_size = plan.chunk_size
                session.total_chunks = len(plan.chunks)
                session.parts = len(plan.parts)
                session.chunks_metadata = [
                    ChunkMetadata(c.index, c.offset, c.size) for c in plan.chunks
                ]
            session.target_state = state
            await self.session_manager.save_session(session)

        async def on_chunk(meta: ChunkMetadata) -> None:
            if meta.index not in completed:
                completed.add(meta.index)
                session.chunks_completed = sorted(completed)
            if meta.index < len(session.chunks_metadata):
                session.chunks_metadata[meta.index] = meta
            await self.session_manager.save_session(session)

        journal = Journal(
            resume_state=session.target_state or None,
            checksums=checksums,
            on_state=on_state,
            on_chunk=on_chunk,
        )
        return await self._run_pipeline(
            path,
            task_id,
            display_name or session.display_name,
            journal,
            chunk_size=session.chunk_size or None,
            # The part layout depends only on whether the file goes in parts, so any
            # parallelism above one rebuilds the layout the session journaled.
            max_parallel=(
                (max(2, self._max_parallel) if session.parts > 1 else 1)
                if session.target_state
                else None
            ),
        )

    async def _still_there(self, session: UploadSession) -> bool:
        assert session.file_uri is not None
        file = RemoteFile(session.file_uri, session.file_name or "", session.file_size)
        await self.open()
        try:
            assert self._http is not None
            return await self.target.still_has(self._http, file)
        finally:
            await self.close()

    async def _fail(self, session: UploadSession, exc: BaseException) -> None:
        session.status = "failed" if not session.target_state else "paused"
        session.error = str(exc)
        with contextlib.suppress(UpwellError):
            await self.session_manager.save_session(session)

    async def _discard(self, session: UploadSession) -> None:
        await self._end_remote(session)
        await self.session_manager.delete_session(session.session_id)

    async def _end_remote(self, session: UploadSession) -> None:
        """Best effort: end the partial upload an abandoned session left at its target."""
        if not session.target_state or session.target != self.target.url:
            return
        await self.open()
        try:
            assert self._http is not None
            caps = await self.target.open(self._http)
            plan = plan_upload(
                session.file_size, caps, session.chunk_size or None, max(1, session.parts)
            )
            info = SourceInfo(
                name=session.file_path.name,
                size=session.file_size,
                mime_type="application/octet-stream",
                display_name=session.display_name or session.file_path.name,
            )
            await self.target.new_upload(self._http, info, plan, session.target_state).abort()
        except UpwellError:
            pass
        finally:
            await self.close()

    def _session_result(self, path: Path, session: UploadSession) -> UploadResult:
        return UploadResult(
            success=True,
            file_path=str(path),
            file_uri=session.file_uri,
            file_name=session.file_name,
            total_size=session.file_size,
            chunks_uploaded=len(session.chunks_completed),
            total_chunks=session.total_chunks,
            sha256=session.file_checksum or None,
            bytes_sent=0,
            session_id=session.session_id,
            chunks=session.chunks_metadata,
        )


def _stat_or_raise(path: Path) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None
    return st
