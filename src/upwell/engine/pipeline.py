"""The pipeline: open the file, plan, create the remote upload, send parts, finish.

It reads from disk in slices, hashes off the event loop, sends through one pooled HTTP
session, asks the target where it stands after every error, and reports progress from where
bytes are handed to the socket. It never names a provider: Capabilities decide.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import logging
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
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
from .adaptive import AUTO_MAX_STREAMS, MAX_REQUEST, RequestSizer, StreamControl
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
    compressed_sent: int = 0  # file bytes of the requests that went compressed, when done
    compressed_wire: int = 0  # and what they took on the wire

    def compression_ratio(self) -> float | None:
        """Wire bytes over file bytes of the compressed requests finished so far; None when
        nothing went compressed (the running counters differ by the slice in flight, which
        is not compression)."""
        if not self.compressed_sent:
            return None
        return self.compressed_wire / self.compressed_sent

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
        adaptive: bool = False,
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
        # Adaptive: max_parallel is a ceiling and the stream count follows the measured rate;
        # otherwise it is the stream count. A chunk size of None lets requests grow too.
        self._adaptive = adaptive
        self.streams: StreamControl | None = None  # the last file's, for tests and progress
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
                # Ask where every part stands, several at once (one round trip, not one each).
                gate = asyncio.Semaphore(8)

                async def where(part: Part) -> None:
                    async with gate:
                        counters.confirmed[part.index] = await self._retrying(
                            functools.partial(remote.part_offset, part)
                        )

                await _all(where(part) for part in plan.parts)
            chunks = {c.index: ChunkMetadata(c.index, c.offset, c.size) for c in plan.chunks}
            file_hash = hashlib.sha256()
            algorithms = tuple(dict.fromkeys(("sha256", *caps.checksum_algorithms)))
            tracker.update_progress(
                task_id, stage="uploading", bytes_uploaded=counters.uploaded(), message="Uploading"
            )
            sizer = RequestSizer(
                plan.chunk_size,
                adaptive=self._chunk_size is None and caps.append,
                max_request=caps.max_chunk_size or MAX_REQUEST,
            )
            job = _PartJob(
                self,
                source,
                remote,
                caps,
                counters,
                chunks,
                tracker,
                task_id,
                algorithms,
                journal,
                sizer,
                follow_parts=caps.part_digests or not plan.parallel,
            )
            # Of parallel parts (or when the target wants other whole-file digests), the
            # whole-file hash reads the file in order in a thread of its own, beside the request
            # hashes: two cores, two hashes at once. One part's hash, followed as its requests
            # are hashed, is the file's: no second read. A file sent whole in one request needs
            # no digest to be assembled.
            whole = plan.parts[0].size == source.size and len(plan.parts[0].chunks) <= 1
            wanted = () if whole else caps.file_digests
            extra = {a: hashlib.new(a) for a in wanted if a != "sha256"}
            hashing = (
                asyncio.ensure_future(
                    asyncio.to_thread(
                        source.hash_range, 0, source.size, [file_hash, *extra.values()]
                    )
                )
                if plan.parallel or extra
                else None
            )
            try:
                await self._send_parts(job, plan)
            except BaseException:
                if hashing is not None:
                    hashing.cancel()
                raise
            if hashing is not None:
                await hashing
            elif 0 in job.part_hashes:
                file_hash = job.part_hashes[0]
            else:  # everything was at the target already: read the file once, now
                await asyncio.to_thread(source.hash_range, 0, source.size, [file_hash])
            if wanted:
                digests = {a: h.digest() for a, h in extra.items()}
                remote.file_digests({"sha256": file_hash.digest(), **digests})
            await source.check_unchanged()
            tracker.update_progress(task_id, stage="finalizing", message="Finalizing upload")
            remote.reporter = functools.partial(_say, tracker, task_id)
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
        """Send every part: one stream for a single part; else streams pull parts from a
        queue in order, as many at a time as the stream control says."""
        if not plan.parallel:
            await job.run(plan.parts[0])
            return
        cap = min(self._max_parallel, AUTO_MAX_STREAMS) if self._adaptive else self._max_parallel
        adaptive = self._adaptive and job.caps.parallel_parts
        if not job.caps.parallel_parts:
            cap = 1  # parts of their own (one chunk each), but one after another
        control = StreamControl(cap, adaptive=adaptive, clock=self._clock)
        self.streams = control
        queue = collections.deque(plan.parts)
        running = 0

        async def stream() -> None:
            nonlocal running
            try:
                # A stream leaves between parts when there are more streams than wanted.
                while queue and running <= control.target:
                    await job.run(queue.popleft())
            finally:
                running -= 1

        try:
            async with asyncio.TaskGroup() as tg:

                def top_up() -> None:
                    nonlocal running
                    before = control.target
                    if control.sample(job.counters.sent) != before:
                        log.debug("%s: %d streams", job.source.path.name, control.target)
                    while running < control.target and queue:
                        running += 1
                        tg.create_task(stream())

                job.on_sent = top_up
                job.on_error = control.error
                top_up()
        except BaseExceptionGroup as group:
            # One part failed and the others were stopped: report why it failed.
            raise _first_cause(group) from None
        finally:
            job.on_sent = job.on_error = None


async def _all(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines at once; the first failure (upwell's own first) is the one raised."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tg.create_task(c)
    except BaseExceptionGroup as group:
        raise _first_cause(group) from None


def _say(tracker: ProgressTracker, task_id: str, message: str) -> None:
    tracker.update_progress(task_id, message=message, force=True)


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
    """Sends the chunks of parts in order, resynchronising with the target after errors.

    Each request carries one or more consecutive planned chunks: as many as keep the stream's
    idle time per request small (RequestSizer), when the chunk size is automatic and the
    target appends; otherwise one chunk per request.
    """

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
        sizer: RequestSizer,
        follow_parts: bool = False,
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
        self.sizer = sizer
        self.follow_parts = follow_parts
        self.part_hashes: dict[int, Any] = {}  # part index -> SHA-256 of the whole part
        self.on_sent: Callable[[], None] | None = None  # after each slice handed out
        self.on_error: Callable[[], object] | None = None  # after a failed request

    async def _digest(
        self, start: int, group: list[Chunk], part: Any | None = None, whole_part: bool = False
    ) -> _Digests:
        """The request's digests over [start, end of group) and each whole chunk's SHA-256,
        from one read of each slice; `part` (a hasher over the part up to `start`, copied
        here) goes on over the request's bytes too."""
        end = group[-1].end
        part = part.copy() if part is not None else None
        # Each whole chunk's SHA-256 (the journal's); the request's own digests for the
        # target's checksum algorithms. A request of one whole chunk shares its SHA-256.
        single = len(group) == 1 and start == group[0].offset
        per: dict[int, Any] = {}
        whole: dict[str, Any] = {}
        for c in group:
            if max(c.offset, start) == c.offset:
                per[c.index] = hashlib.sha256()
        for a in self.algorithms:
            if a == "sha256" and single:
                whole[a] = per[group[0].index]
            elif a != "sha256" or "sha256" in self.caps.checksum_algorithms:
                whole[a] = hashlib.new(a)
        if part is not None and whole_part:
            # A request that is the whole part: its SHA-256 is the part's, hashed once.
            if single:
                part = per[group[0].index]
            elif "sha256" in whole:
                part = whole["sha256"]
        lanes: list[tuple[int, int, list[Any]]] = []
        for c in group:
            lo = max(c.offset, start)
            hashers: list[Any] = []
            for h in (*whole.values(), per.get(c.index), part):
                if h is not None and all(h is not k for k in hashers):
                    hashers.append(h)
            lanes.append((lo, c.end - lo, hashers))

        def work() -> None:
            for lo, n, hashers in lanes:
                self.source.hash_range(lo, n, hashers)

        await asyncio.to_thread(work)
        digests = {a: h.digest() for a, h in whole.items()}
        sums = {i: h.hexdigest() for i, h in per.items()}
        return _Digests(start, end, digests, sums, part)

    def _report(self, chunk: Chunk) -> None:
        c = self.counters
        self.tracker.update_progress(
            self.task_id,
            bytes_uploaded=c.uploaded(),
            chunk_index=chunk.index,
            compression_ratio=c.compression_ratio(),
        )

    async def run(self, part: Part) -> None:
        """Send what the target lacks of `part`."""
        pos = part.offset + self.counters.confirmed[part.index]
        if pos > part.offset:
            await self._verify_prefix(part, pos)
        todo = [c for c in part.chunks if c.end > pos]
        # The part's own SHA-256, followed request by request, for targets that can check
        # each stored part, and as the file's when it is the only part (a resumed part
        # re-reads what it already holds, once).
        part_hash: Any = hashlib.sha256() if self.follow_parts else None
        if part_hash is not None and todo and pos > part.offset:
            await asyncio.to_thread(
                self.source.hash_range, part.offset, pos - part.offset, [part_hash]
            )
        i = 0
        nxt: asyncio.Future[_Digests] | None = None

        def group_at(i: int) -> list[Chunk]:
            return todo[i : i + self.sizer.chunks(len(todo) - i)]

        try:
            while i < len(todo):
                group = group_at(i)
                start = max(group[0].offset, pos)
                if nxt is None:
                    nxt = asyncio.ensure_future(
                        self._digest(*self._lane(part, start, group, part_hash))
                    )
                d = await nxt
                nxt = None
                if d.start != start or d.end != group[-1].end:
                    # The sizer changed its mind since this was hashed ahead: hash again.
                    d = await self._digest(*self._lane(part, start, group, part_hash))
                part_hash = d.part
                if i + len(group) < len(todo):
                    # Hash the next request while this one is on the wire.
                    ahead = group_at(i + len(group))
                    lane = self._lane(part, ahead[0].offset, ahead, part_hash)
                    nxt = asyncio.ensure_future(self._digest(*lane))
                ends_part = group[-1].end == part.end
                await self._send_request(
                    part, group, d, part_hash.digest() if ends_part and part_hash else None
                )
                i += len(group)
            if part_hash is not None and (todo or pos == part.offset):
                self.part_hashes[part.index] = part_hash
        finally:
            if nxt is not None:
                nxt.cancel()

    @staticmethod
    def _lane(
        part: Part, start: int, group: list[Chunk], part_hash: Any | None
    ) -> tuple[int, list[Chunk], Any | None, bool]:
        """_digest's arguments for a request: whether it is the whole part decides whether
        the part's SHA-256 needs a hasher of its own."""
        return start, group, part_hash, start == part.offset and group[-1].end == part.end

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

    async def _send_request(
        self, part: Part, group: list[Chunk], d: _Digests, part_sha256: bytes | None
    ) -> None:
        """Send [d.start, end of group), retrying from wherever the target says it stands."""
        first, last = group[0], group[-1]
        end = last.end
        metas = [self.chunks[c.index] for c in group]
        for c, meta in zip(group, metas, strict=True):
            if c.index in d.sums:
                meta.checksum = d.sums[c.index]
        digests, digest_start = d.digests, d.start
        t0 = time.monotonic()
        need_sync = False
        handed = 0
        all_out = 0.0

        def on_slice(n: int) -> None:
            nonlocal handed, all_out
            self.counters.inflight[part.index] += n
            self.counters.sent += n
            handed += n
            if handed >= end - digest_start:
                all_out = time.monotonic()
            self._report(last)
            if self.on_sent is not None:
                self.on_sent()

        async def attempt() -> None:
            nonlocal need_sync, digests, digest_start, handed
            if need_sync:
                self.counters.confirmed[part.index] = await self.remote.part_offset(part)
                need_sync = False
            pos = part.offset + self.counters.confirmed[part.index]
            if pos >= end:
                return
            if pos != digest_start:
                # The target holds a different prefix than planned: checksum what we now send.
                digests = await self.source.digest_range(pos, end - pos, self.algorithms)
                digest_start = pos
            handed = 0
            throttle = self.p._throttle
            compressor = await self._compressor(first, pos)
            wire = 0

            async def on_wire(n: int) -> None:
                nonlocal wire
                wire += n
                self.counters.wire += n
                if throttle is not None:
                    await throttle.consume(n)

            stream = FileSlices(
                self.source,
                pos,
                end - pos,
                on_slice=on_slice,
                before_slice=on_wire,
                slice_size=throttle.slice_size(SLICE_SIZE) if throttle else SLICE_SIZE,
                compressor=compressor,
            )
            body = Body(
                offset=pos,
                size=end - pos,
                stream=stream,
                digests=digests,
                encoding="gzip" if compressor is not None else None,
                part_sha256=part_sha256,
            )
            started = time.monotonic()
            try:
                rel = await self.remote.send(part, body)
            except TargetError as exc:
                need_sync = self.caps.append
                for meta in metas:
                    meta.error = str(exc)
                if throttle:
                    throttle.record_failure(exc.status)
                if self.on_error is not None:
                    self.on_error()
                raise
            finally:
                self.counters.inflight[part.index] = 0
            if throttle:
                throttle.record_success()
            if compressor is not None:
                self.counters.compressed_sent += end - pos
                self.counters.compressed_wire += wire
            self.counters.confirmed[part.index] = rel
            if not self.caps.append:
                # A whole part landed: what the target answered for it (a part id) may be all
                # a later run has to resume from, so journal the state now.
                await self.journal.state_moved(self.remote.state())
            if part.offset + rel < end:
                need_sync = True
                raise TargetError(
                    f"the target kept {part.offset + rel - pos} of {end - pos} bytes sent",
                    retryable=True,
                )
            answered = time.monotonic()
            if all_out:
                self.sizer.observe(end - pos, all_out - started, answered - all_out)

        def on_retry(n: int, exc: TargetError) -> None:
            what = f"chunk {first.index}" + (f"-{last.index}" if last is not first else "")
            message = f"Retrying {what} ({n}/{self.p._retry.max_retries}): {exc}"
            log.warning("%s: %s", self.source.path.name, message)
            self.tracker.update_progress(self.task_id, message=message, force=True)

        await call_with_retries(attempt, self.p._retry, sleep=self.p._sleep, on_retry=on_retry)
        elapsed = time.monotonic() - t0
        for c, meta in zip(group, metas, strict=True):
            if not meta.checksum:
                digest = await self.source.digest_range(c.offset, c.size, ("sha256",))
                meta.checksum = digest["sha256"].hex()
            meta.uploaded = True
            meta.error = None
            meta.upload_time = elapsed * c.size / max(1, end - first.offset)
            self.journal.chunk_done(meta)
        self._report(last)


@dataclass(frozen=True)
class _Digests:
    """A request's digests (over [start, end)) and the SHA-256 of each whole chunk in it."""

    start: int
    end: int
    digests: dict[str, bytes]
    sums: dict[int, str]
    part: Any | None = None  # the part's SHA-256 over [part start, end), when followed
