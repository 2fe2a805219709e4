"""The pipeline: open the file, plan, create the remote upload, send parts, finish.

It reads from disk in slices, hashes off the event loop, sends through one pooled HTTP
session, asks the target where it stands after every error, and reports progress from where
bytes are handed to the socket. It never names a provider: Capabilities decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from ..config import format_size
from ..errors import FileChangedError, IntegrityError, SourceError, TargetError, UpwellError
from ..progress import ProgressTracker
from ..results import ChunkMetadata
from ..targets.base import Body, RemoteFile, RemoteUpload, SourceInfo, Target
from ..targets.capabilities import Capabilities
from .compress import SAMPLE_SIZE, Compressor, gzip_compressor, worth_compressing
from .planner import Chunk, Part, Plan, plan_upload
from .reader import SLICE_SIZE, FileSlices, FileSource
from .retry import RetryPolicy, Sleep, call_with_retries

log = logging.getLogger("upwell")


class Throttle(Protocol):
    """Anything that can hold back `n` bytes until they may be sent (a token bucket)."""

    async def consume(self, n: int) -> None: ...

    def slice_size(self, default: int) -> int: ...

    def record_success(self) -> None: ...

    def record_failure(self, status: int | None) -> None: ...


@dataclass
class Journal:
    """What earlier runs left (target state, chunk checksums) and where to record progress.

    The pipeline reports a chunk only after the target acknowledged it.
    """

    resume_state: dict[str, Any] | None = None
    checksums: dict[int, str] = field(default_factory=dict)
    on_state: Callable[[dict[str, Any], Plan], Awaitable[None]] | None = None
    on_chunk: Callable[[ChunkMetadata], Awaitable[None]] | None = None
    _pending: set[asyncio.Future[None]] = field(default_factory=set, repr=False)
    _plan: Plan | None = field(default=None, repr=False)

    async def state_changed(self, state: dict[str, Any], plan: Plan) -> None:
        self._plan = plan
        if self.on_state is not None:
            await self.on_state(state, plan)

    async def state_moved(self, state: dict[str, Any]) -> None:
        """The target's state changed mid-upload (same plan as the last `state_changed`)."""
        if self._plan is not None:
            await self.state_changed(state, self._plan)

    def chunk_done(self, meta: ChunkMetadata) -> None:
        """Record an acknowledged chunk without holding up the next one (the target, not the
        journal, is the truth on resume, so a record may land a moment after the ack)."""
        if self.on_chunk is not None:
            task = asyncio.ensure_future(self.on_chunk(meta))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for every chunk record to be written (errors surface here)."""
        while self._pending:
            await asyncio.gather(*list(self._pending))


@dataclass
class Outcome:
    """What the pipeline did for one file."""

    remote: RemoteFile
    plan: Plan
    sha256: str
    chunks: list[ChunkMetadata]
    bytes_sent: int
    bytes_on_wire: int
    duration: float
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Counters:
    confirmed: dict[int, int]  # per part: bytes the target holds
    inflight: dict[int, int]  # per part: bytes of the current request handed to the socket
    sent: int = 0  # file bytes sent, retries included
    wire: int = 0  # bytes on the wire (after compression), retries included

    def uploaded(self) -> int:
        return sum(self.confirmed.values()) + sum(self.inflight.values())


class Pipeline:
    """Moves one file at a time to `target`; many may run at once over the same `http`."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        target: Target,
        *,
        chunk_size: int | None,
        max_parallel: int,
        retry: RetryPolicy,
        throttle: Throttle | None = None,
        compress: bool = False,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._compress = compress
        self._target = target
        self._chunk_size = chunk_size
        self._max_parallel = max(1, max_parallel)
        self._retry = retry
        self._throttle = throttle
        self._sleep = sleep
        self._clock = clock

    async def _retrying(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        def on_retry(n: int, exc: TargetError) -> None:
            log.warning("retry %d/%d: %s", n, self._retry.max_retries, exc)

        return await call_with_retries(fn, self._retry, sleep=self._sleep, on_retry=on_retry)

    async def run(
        self,
        path: str | os.PathLike[str],
        tracker: ProgressTracker,
        task_id: str,
        *,
        display_name: str | None = None,
        journal: Journal | None = None,
        abort_on_cancel: bool = True,
    ) -> Outcome:
        """Upload `path`; resume from `journal.resume_state` when given."""
        started = self._clock()
        source = await FileSource.open(path)
        try:
            return await self._run(
                source,
                tracker,
                task_id,
                display_name,
                journal or Journal(),
                abort_on_cancel,
                started,
            )
        finally:
            await source.close()

    async def _run(
        self,
        source: FileSource,
        tracker: ProgressTracker,
        task_id: str,
        display_name: str | None,
        journal: Journal,
        abort_on_cancel: bool,
        started: float,
    ) -> Outcome:
        path = Path(source.path)
        caps: Capabilities = await self._retrying(lambda: self._target.open(self._http))
        if caps.max_size is not None and source.size > caps.max_size:
            raise SourceError(
                f"{path.name} is {format_size(source.size)}, over the target's limit of "
                f"{format_size(caps.max_size)}"
            )
        plan = plan_upload(source.size, caps, self._chunk_size, self._max_parallel)
        tracker.update_progress(
            task_id,
            stage="chunking",
            total_chunks=len(plan.chunks),
            message=f"Split into {len(plan.chunks)} chunks of {format_size(plan.chunk_size)}"
            + (f" in {len(plan.parts)} parallel parts" if plan.parallel else ""),
        )
        info = SourceInfo(
            name=path.name,
            size=source.size,
            # The path's type, else the display name's (a file stored under an id).
            mime_type=mimetypes.guess_type(path.name)[0]
            or mimetypes.guess_type(display_name or "")[0]
            or "application/octet-stream",
            display_name=display_name or path.name,
        )
        remote = self._target.new_upload(self._http, info, plan, journal.resume_state)
        try:
            await self._retrying(remote.create)
            await journal.state_changed(remote.state(), plan)
            counters = _Counters(
                confirmed={p.index: 0 for p in plan.parts},
                inflight={p.index: 0 for p in plan.parts},
            )
            if journal.resume_state:
                for part in plan.parts:
                    counters.confirmed[part.index] = await self._retrying(
                        functools.partial(remote.part_offset, part)
                    )
            chunks = {c.index: ChunkMetadata(c.index, c.offset, c.size) for c in plan.chunks}
            file_hash = hashlib.sha256()
            algorithms = tuple(dict.fromkeys(("sha256", *caps.checksum_algorithms)))
            tracker.update_progress(
                task_id, stage="uploading", bytes_uploaded=counters.uploaded(), message="Uploading"
            )
            job = _PartJob(
                self, source, remote, caps, counters, chunks, tracker, task_id, algorithms, journal
            )
            # The whole-file hash reads the file in order in a thread of its own, beside the
            # chunk hashes that must precede each request: two cores, two hashes at once.
            # A file sent whole in one request needs no digest to be assembled.
            whole = plan.parts[0].size == source.size and len(plan.parts[0].chunks) <= 1
            wanted = () if whole else caps.file_digests
            extra = {a: hashlib.new(a) for a in wanted if a != "sha256"}
            hashing = asyncio.ensure_future(
                asyncio.to_thread(source.hash_range, 0, source.size, [file_hash, *extra.values()])
            )
            try:
                await self._send_parts(job, plan)
            except BaseException:
                hashing.cancel()
                raise
            await hashing
            if wanted:
                digests = {a: h.digest() for a, h in extra.items()}
                remote.file_digests({"sha256": file_hash.digest(), **digests})
            await source.check_unchanged()
            tracker.update_progress(task_id, stage="finalizing", message="Finalizing upload")
            remote_file: RemoteFile = await self._retrying(remote.finish)
            await journal.state_changed(remote.state(), plan)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await journal.flush()
            if abort_on_cancel:
                await asyncio.shield(remote.abort())
            raise
        except BaseException:
            # The chunks acknowledged before the failure are recorded before it is reported.
            with contextlib.suppress(Exception):
                await journal.flush()
            raise
        await journal.flush()
        sha = file_hash.hexdigest()
        if remote_file.sha256 is not None and remote_file.sha256 != sha:
            raise IntegrityError(
                f"{path.name}: the target stored SHA-256 {remote_file.sha256[:12]}…, "
                f"but the file's is {sha[:12]}…"
            )
        return Outcome(
            remote=remote_file,
            plan=plan,
            sha256=sha,
            chunks=[chunks[i] for i in sorted(chunks)],
            bytes_sent=counters.sent,
            bytes_on_wire=counters.wire,
            duration=self._clock() - started,
            state=remote.state(),
        )

    async def _send_parts(self, job: _PartJob, plan: Plan) -> None:
        """Send every part: one after another's chunks, or up to max_parallel parts at once."""
        if not plan.parallel:
            await job.run(plan.parts[0])
            return
        sem = asyncio.Semaphore(self._max_parallel)

        async def bounded(part: Part) -> None:
            async with sem:
                await job.run(part)

        try:
            async with asyncio.TaskGroup() as tg:
                for part in plan.parts:
                    tg.create_task(bounded(part))
        except BaseExceptionGroup as group:
            # One part failed and the others were stopped: report why it failed.
            raise _first_cause(group) from None


def _first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a group of parts: upwell's own first, then anything else."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, UpwellError):
            return e
    return leaves[0]


class _PartJob:
    """Sends the chunks of one part in order, resynchronising with the target after errors."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: FileSource,
        remote: RemoteUpload,
        caps: Capabilities,
        counters: _Counters,
        chunks: dict[int, ChunkMetadata],
        tracker: ProgressTracker,
        task_id: str,
        algorithms: tuple[str, ...],
        journal: Journal,
    ) -> None:
        self.p = pipeline
        self.source = source
        self.remote = remote
        self.caps = caps
        self.journal = journal
        self.compressible: dict[int, bool] = {}
        self.counters = counters
        self.chunks = chunks
        self.tracker = tracker
        self.task_id = task_id
        self.algorithms = algorithms

    async def _digest(self, start: int, end: int) -> dict[str, bytes]:
        return await self.source.digest_range(start, end - start, self.algorithms)

    def _report(self, chunk: Chunk) -> None:
        c = self.counters
        self.tracker.update_progress(
            self.task_id,
            bytes_uploaded=c.uploaded(),
            chunk_index=chunk.index,
            compression_ratio=c.wire / c.sent if c.sent and c.wire != c.sent else None,
        )

    async def run(self, part: Part) -> None:
        """Send what the target lacks of `part`."""
        pos = part.offset + self.counters.confirmed[part.index]
        if pos > part.offset:
            await self._verify_prefix(part, pos)
        todo = [(max(c.offset, pos), c) for c in part.chunks if c.end > pos]
        nxt: asyncio.Future[dict[str, bytes]] | None = None
        if todo:
            nxt = asyncio.ensure_future(self._digest(todo[0][0], todo[0][1].end))
        try:
            for i, (start, chunk) in enumerate(todo):
                assert nxt is not None
                digests = await nxt
                nxt = None
                if i + 1 < len(todo):
                    # Hash the next chunk while this one is on the wire.
                    nxt = asyncio.ensure_future(self._digest(todo[i + 1][0], todo[i + 1][1].end))
                await self._send_chunk(part, chunk, start, digests)
        finally:
            if nxt is not None:
                nxt.cancel()

    async def _verify_prefix(self, part: Part, pos: int) -> None:
        """Re-hash the whole chunks the target already holds: one whose SHA-256 differs from
        the journal's proves the file changed since that run."""
        for c in part.chunks:
            if c.end > pos:
                break
            digest = (await self.source.digest_range(c.offset, c.size, ("sha256",)))["sha256"].hex()
            expected = self.journal.checksums.get(c.index)
            if expected and expected != digest:
                raise FileChangedError(
                    f"{self.source.path}: chunk {c.index} differs from what was uploaded before; "
                    "the file changed since the last run"
                )
            meta = self.chunks[c.index]
            meta.checksum, meta.uploaded = digest, True

    async def _compressor(self, chunk: Chunk, pos: int) -> Compressor | None:
        """A gzip compressor when the target decodes gzip and a sample of the chunk shrinks."""
        if not self.p._compress or "gzip" not in self.caps.compression:
            return None
        worth = self.compressible.get(chunk.index)
        if worth is None:
            n = min(SAMPLE_SIZE, chunk.end - pos)
            sample = await asyncio.to_thread(self.source.read_exact, pos, n)
            worth = await asyncio.to_thread(worth_compressing, sample)
            self.compressible[chunk.index] = worth
        return gzip_compressor() if worth else None

    async def _send_chunk(
        self, part: Part, chunk: Chunk, digest_start: int, digests: dict[str, bytes]
    ) -> None:
        """Send [digest_start, chunk.end), retrying from wherever the target says it stands."""
        meta = self.chunks[chunk.index]
        if digest_start == chunk.offset:
            meta.checksum = digests["sha256"].hex()
        t0 = time.monotonic()
        need_sync = False

        def on_slice(n: int) -> None:
            self.counters.inflight[part.index] += n
            self.counters.sent += n
            self._report(chunk)

        async def attempt() -> None:
            nonlocal need_sync, digests, digest_start
            if need_sync:
                self.counters.confirmed[part.index] = await self.remote.part_offset(part)
                need_sync = False
            pos = part.offset + self.counters.confirmed[part.index]
            if pos >= chunk.end:
                return
            if pos != digest_start:
                # The target holds a different prefix than planned: checksum what we now send.
                digests = await self.source.digest_range(pos, chunk.end - pos, self.algorithms)
                digest_start = pos
            throttle = self.p._throttle
            compressor = await self._compressor(chunk, pos)

            async def on_wire(n: int) -> None:
                self.counters.wire += n
                if throttle is not None:
                    await throttle.consume(n)

            stream = FileSlices(
                self.source,
                pos,
                chunk.end - pos,
                on_slice=on_slice,
                before_slice=on_wire,
                slice_size=throttle.slice_size(SLICE_SIZE) if throttle else SLICE_SIZE,
                compressor=compressor,
            )
            body = Body(
                offset=pos,
                size=chunk.end - pos,
                stream=stream,
                digests=digests,
                encoding="gzip" if compressor is not None else None,
            )
            try:
                rel = await self.remote.send(part, body)
            except TargetError as exc:
                need_sync = self.caps.append
                meta.error = str(exc)
                if throttle:
                    throttle.record_failure(exc.status)
                raise
            finally:
                self.counters.inflight[part.index] = 0
            if throttle:
                throttle.record_success()
            self.counters.confirmed[part.index] = rel
            if not self.caps.append:
                # A whole part landed: what the target answered for it (a part id) may be all
                # a later run has to resume from, so journal the state now.
                await self.journal.state_moved(self.remote.state())
            if part.offset + rel < chunk.end:
                need_sync = True
                raise TargetError(
                    f"the target kept {part.offset + rel - pos} of {chunk.end - pos} bytes sent",
                    retryable=True,
                )

        def on_retry(n: int, exc: TargetError) -> None:
            message = f"Retrying chunk {chunk.index} ({n}/{self.p._retry.max_retries}): {exc}"
            log.warning("%s: %s", self.source.path.name, message)
            self.tracker.update_progress(self.task_id, message=message, force=True)

        await call_with_retries(attempt, self.p._retry, sleep=self.p._sleep, on_retry=on_retry)
        if not meta.checksum:
            digest = await self.source.digest_range(chunk.offset, chunk.size, ("sha256",))
            meta.checksum = digest["sha256"].hex()
        meta.uploaded = True
        meta.error = None
        meta.upload_time = time.monotonic() - t0
        self._report(chunk)
        self.journal.chunk_done(meta)
