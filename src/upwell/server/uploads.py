"""Upload operations over the state, byte and lock interfaces: create, append, concatenate,
terminate, expire. Protocol decisions (which status) are made here; HTTP is tus.py's business.

The invariant after every operation: an upload's file holds exactly `offset` bytes, and an
offset is recorded only after its bytes were fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from ..errors import ProtocolError
from .digests import RunningDigests
from .ids import new_upload_id
from .locks import Lease, Locker, UploadLockedError
from .owners import current_owner
from .settings import ServerSettings
from .state import ANONYMOUS, StateStore, Upload
from .storage import MAX_BATCH_BUFFERS, ByteStore, ByteWriter, Checksum

log = logging.getLogger("upwell.server")

MIN_BATCH_BYTES = 64 * 1024


class BodyInterrupted(Exception):
    """The request body ended before it was complete (connection lost, or a takeover)."""


class Body(Protocol):
    """A request body as a stream of chunks; `read` returns b"" at its end.

    `read` raises BodyInterrupted when the body cannot be finished; bytes that arrived before
    must have been returned first. `stop` makes a pending or later `read` raise it.
    """

    @property
    def declared(self) -> int | None:
        """The body's length in bytes as the client announced it, if it did."""

    async def read(self) -> bytes: ...

    def stop(self) -> None: ...


class UploadObserver(Protocol):
    """Told what happens to uploads (the catalog's events and metrics listen here)."""

    async def receiving(self, upload: Upload, offset: int) -> None:
        """Bytes of `upload` arrived; `offset` counts them (not yet durable). Must be cheap."""

    async def changed(self, upload: Upload) -> None:
        """The upload was created or its committed offset, length or digest changed."""

    async def removed(self, upload: Upload) -> None:
        """The upload and its bytes are gone (terminated, expired, or never finished)."""

    def checksum_mismatch(self, upload: Upload) -> None:
        """A body did not match its Upload-Checksum."""


class _Unobserved:
    async def receiving(self, upload: Upload, offset: int) -> None:
        pass

    async def changed(self, upload: Upload) -> None:
        pass

    async def removed(self, upload: Upload) -> None:
        pass

    def checksum_mismatch(self, upload: Upload) -> None:
        pass


def _noop() -> None:
    pass


@dataclass(frozen=True)
class _Limit:
    remaining: int
    reason: str


class Uploads:
    """The tus server's upload operations; every failure is a ProtocolError with its status."""

    def __init__(
        self,
        settings: ServerSettings,
        state: StateStore,
        storage: ByteStore,
        locker: Locker,
        now: Callable[[], datetime],
        observer: UploadObserver | None = None,
    ) -> None:
        self._settings = settings
        self.observer: UploadObserver = observer or _Unobserved()
        self._state = state
        self._storage = storage
        self._locker = locker
        self._now = now
        self._writers = 0  # requests appending right now; they share the write buffer budget
        # Final uploads (concatenation-unfinished) this process saw created, by part; others
        # (another replica's, or from before a restart) are assembled when they are next read.
        self._waiting: dict[str, set[str]] = {}
        # PATCH requests of this process under way, by upload: each event is set once the
        # request has committed (or failed).
        self._writing: dict[str, set[asyncio.Event]] = {}
        self._digests = RunningDigests()

    async def get(self, upload_id: str) -> Upload:
        """The upload; 404 when unknown (or another owner's), 410 when it expired unfinished."""
        upload = await self._state.get(upload_id)
        owner = current_owner.get()
        if upload is None or (owner is not None and upload.owner != owner):
            raise ProtocolError(f"no upload {upload_id}", 404)
        if upload.expired(self._now()):
            raise ProtocolError(f"upload {upload_id} expired unfinished", 410)
        return await self._assemble(upload)

    async def settled(self, upload_id: str) -> Upload:
        """The upload once a request still appending to it has committed, waiting at most
        lock_wait_seconds: a client whose PATCH was cut asks HEAD at once, and must learn the
        offset of the bytes that PATCH stored, not the one before it. A writer still streaming
        after the wait is answered with the durable offset it has reached so far."""
        writing = list(self._writing.get(upload_id, ()))
        if writing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.lock_wait_seconds):
                    for committed in writing:
                        await committed.wait()
        return await self.get(upload_id)

    async def probe_state(self, upload_id: str) -> None:
        """Ask the state store something (readiness); raises when it cannot answer."""
        await self._state.get(upload_id)

    async def probe_storage(self, upload_id: str) -> None:
        """Ask the byte store something (readiness); raises when it cannot answer."""
        await self._storage.segments(upload_id)

    async def segments(self, upload_id: str) -> list[Path] | None:
        """The local files that hold the upload's bytes in order (None: not on local disk)."""
        return await self._storage.segments(upload_id)

    def _check_size(self, length: int) -> None:
        max_size = self._settings.max_size
        if max_size is not None and length > max_size:
            raise ProtocolError(
                f"upload of {length} bytes is larger than this server's {max_size} byte limit",
                413,
            )

    async def create(
        self,
        *,
        length: int | None,
        metadata: str,
        partial: bool = False,
        body: Body | None = None,
        checksum: Checksum | None = None,
    ) -> Upload:
        """A new upload (`length` None: deferred), optionally with its first bytes."""
        if length is not None:
            self._check_size(length)
        now = self._now()
        upload = Upload(
            id=new_upload_id(),
            length=length,
            offset=0,
            metadata=metadata,
            created=now,
            expires=now + self._settings.expiry,
            concat="partial" if partial else None,
            owner=current_owner.get() or ANONYMOUS,
        )
        if upload.completed:
            upload = replace(upload, expires=None)
        await self._storage.create(upload.id)
        await self._state.create(upload)
        await self.observer.changed(upload)
        if body is None:
            return upload
        try:
            async with self._locker.hold(upload.id, body.stop) as lease:
                return await self._append_locked(upload, body, checksum, lease)
        except BaseException:
            # The client never learnt this upload's URL: nothing can resume it.
            await self._forget(upload.id)
            raise

    async def append(
        self,
        upload_id: str,
        *,
        offset: int,
        length: int | None,
        body: Body,
        checksum: Checksum | None = None,
        limit: int | None = None,
    ) -> Upload:
        """Append a PATCH body at `offset` (409 if it is not the upload's), setting a deferred
        length when `length` is given. `limit` caps the upload's size below the server's
        (an owner's quota)."""
        # Registered before the first await, so a HEAD that follows this request's cut
        # connection always finds it (see `settled`).
        committed = asyncio.Event()
        self._writing.setdefault(upload_id, set()).add(committed)
        try:
            return await self._append(upload_id, offset, length, body, checksum, limit)
        finally:
            committed.set()
            writing = self._writing.get(upload_id)
            if writing is not None:
                writing.discard(committed)
                if not writing:
                    del self._writing[upload_id]

    async def _append(
        self,
        upload_id: str,
        offset: int,
        length: int | None,
        body: Body,
        checksum: Checksum | None,
        limit: int | None,
    ) -> Upload:
        async with self._locker.hold(upload_id, body.stop) as lease:
            upload = await self.get(upload_id)
            if upload.concat == "final":
                raise ProtocolError("a final concatenated upload cannot be patched", 403)
            if length is not None and length != upload.length:
                if upload.length is not None:
                    raise ProtocolError(
                        f"Upload-Length is already {upload.length} and cannot change", 400
                    )
                if length < upload.offset:
                    raise ProtocolError(
                        f"Upload-Length {length} is less than the {upload.offset} bytes received",
                        400,
                    )
                self._check_size(length)
                upload = replace(upload, length=length)
            if offset != upload.offset:
                raise ProtocolError(
                    f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                    409,
                )
            updated = await self._append_locked(upload, body, checksum, lease, limit)
        if updated.completed and updated.concat == "partial":
            await self._part_completed(upload_id)
        return updated

    async def complete_deferred(self, upload_id: str) -> Upload:
        """Fix a deferred upload's length at the bytes it holds: it is complete."""
        async with self._locker.hold(upload_id, _noop):
            upload = await self.get(upload_id)
            if upload.length is not None:
                raise ProtocolError(f"upload {upload_id} already has a length", 400)
            done = replace(upload, length=upload.offset, expires=None)
            await self._state.update(done)
            await self.observer.changed(done)
            return done

    def _limit(self, upload: Upload, cap: int | None = None) -> _Limit:
        if cap is not None and (upload.length is None or upload.length > cap):
            return _Limit(cap - upload.offset, f"the owner's limit of {cap} bytes")
        if upload.length is not None:
            return _Limit(upload.length - upload.offset, f"Upload-Length {upload.length}")
        if self._settings.max_size is not None:
            return _Limit(
                self._settings.max_size - upload.offset,
                f"the server's {self._settings.max_size} byte limit",
            )
        return _Limit(sys.maxsize, "")

    async def _append_locked(
        self,
        upload: Upload,
        body: Body,
        checksum: Checksum | None,
        lease: Lease,
        cap: int | None = None,
    ) -> Upload:
        limit = self._limit(upload, cap)
        if body.declared is not None and body.declared > limit.remaining:
            raise ProtocolError(f"{body.declared} more bytes would exceed {limit.reason}", 413)
        writer = await self._storage.open_writer(upload.id, upload.offset, checksum)
        self._writers += 1
        try:
            return await self._receive(upload, body, checksum, lease, limit, writer)
        finally:
            self._writers -= 1

    def _batch_limit(self) -> int:
        """Bytes to gather per write: large for few writers, smaller when many share memory."""
        share = self._settings.write_buffer_budget // max(1, self._writers)
        return max(MIN_BATCH_BYTES, min(self._settings.write_batch_bytes, share))

    async def _receive(
        self,
        upload: Upload,
        body: Body,
        checksum: Checksum | None,
        lease: Lease,
        limit: _Limit,
        writer: ByteWriter,
    ) -> Upload:
        batch: list[bytes] = []
        batch_size = received = 0
        batch_limit = self._batch_limit()
        interrupted: BodyInterrupted | None = None
        overflow = False
        running = self._digests.begin(upload.id, upload.offset)
        try:
            while chunk := await body.read():
                received += len(chunk)
                if received > limit.remaining:
                    overflow = True
                    break
                batch.append(chunk)
                batch_size += len(chunk)
                lease.touch(received)
                if batch_size >= batch_limit or len(batch) >= MAX_BATCH_BUFFERS:
                    await running.feed(batch)
                    await writer.write(batch)
                    batch, batch_size = [], 0
                    batch_limit = self._batch_limit()
                    await self.observer.receiving(upload, upload.offset + received)
            await running.feed(batch)
            hasher = await running.done()
        except BodyInterrupted as exc:
            interrupted = exc
            await running.feed(batch)
            hasher = await running.done()
        except BaseException:
            running.cancel()
            await writer.finish([], keep=False)
            raise
        # A cut-off body keeps what arrived, unless a checksum covered the whole of it.
        keep = not overflow and (interrupted is None or checksum is None)
        if keep and received:
            await self.observer.receiving(upload, upload.offset + received)
        appended = await writer.finish(batch, keep=keep)
        if overflow:
            raise ProtocolError(f"the body is longer than {limit.reason} allows", 413)
        if appended.checksum_mismatch:
            self.observer.checksum_mismatch(upload)
            raise ProtocolError("Upload-Checksum does not match the body; nothing was stored", 460)
        now = self._now()
        updated = replace(upload, offset=upload.offset + appended.kept)
        updated = replace(
            updated, expires=None if updated.completed else now + self._settings.expiry
        )
        digest = self._digests.commit(upload.id, upload.offset, running, hasher, appended.kept)
        if updated.completed:
            self._digests.forget(upload.id)
            if digest is not None:
                # The last byte landed: its digest is known without reading anything back.
                updated = replace(updated, sha256=digest.hex())
        await self._state.update(updated)
        if updated.completed and updated.length is not None:
            await self._seal(updated.id, updated.length)  # before anyone is told it is stored
        await self.observer.changed(updated)
        if interrupted is not None:
            raise ProtocolError(
                f"the body ended early ({interrupted}); "
                f"{appended.kept} bytes were stored, offset is {updated.offset}",
                400,
            )
        return updated

    async def _seal(self, upload_id: str, length: int) -> None:
        """Make a complete upload's bytes one readable whole; a failure is retried on read."""
        try:
            await self._storage.seal(upload_id, length)
        except Exception:
            log.warning("sealing upload %s failed; the next read retries", upload_id, exc_info=True)

    async def read(self, upload: Upload, start: int, stop: int) -> AsyncIterator[bytes]:
        """A complete upload's bytes [start, stop), from whichever store holds them."""
        if not upload.completed or upload.length is None:
            raise ProtocolError(
                f"upload {upload.id} can be read from this server's storage once it is complete",
                409,
            )
        await self._storage.seal(upload.id, upload.length)
        async for chunk in self._storage.read(upload.id, start, stop):
            yield chunk

    async def sha256(self, upload_id: str) -> bytes | None:
        """SHA-256 of a complete upload's bytes, computed once and kept; None if unfinished."""
        upload = await self.get(upload_id)
        if not upload.completed:
            return None
        if upload.sha256 is not None:
            return bytes.fromhex(upload.sha256)
        assert upload.length is not None
        await self._storage.seal(upload_id, upload.length)
        digest = await self._storage.sha256(upload_id)
        current = await self._state.get(upload_id)
        if current is not None and current.completed:
            await self._state.update(replace(current, sha256=digest.hex()))
        return digest

    async def concatenate(self, *, parts: Sequence[str], metadata: str) -> Upload:
        """A final upload made of partial uploads, in order.

        With concatenation-unfinished, parts may still be being written: the final upload is
        recorded at once (no length, no bytes) and assembled when its last part completes, by
        the PATCH that completes it or at the next look at the final upload.
        """
        finished = True
        for part_id in parts:
            part = await self._part(part_id)
            finished = finished and part.completed
        if not finished:
            now = self._now()
            upload = Upload(
                id=new_upload_id(),
                length=None,
                offset=0,
                metadata=metadata,
                created=now,
                expires=None,  # it lives as long as its parts do
                concat="final",
                parts=tuple(parts),
                owner=current_owner.get() or ANONYMOUS,
            )
            await self._storage.create(upload.id)
            await self._state.create(upload)
            await self.observer.changed(upload)
            for part_id in set(parts):
                self._waiting.setdefault(part_id, set()).add(upload.id)
            return await self._assemble(upload)
        async with contextlib.AsyncExitStack() as stack:
            for part_id in sorted(set(parts)):
                await stack.enter_async_context(self._locker.hold(part_id, _noop))
            total = await self._finished_length(parts)
            owner = current_owner.get()
            upload_id = new_upload_id()
            await self._storage.create(upload_id)
            try:
                size = await self._storage.concatenate(upload_id, parts)
                if size != total:
                    raise OSError(f"concatenated {size} bytes, expected {total}")
                upload = Upload(
                    id=upload_id,
                    length=total,
                    offset=total,
                    metadata=metadata,
                    created=self._now(),
                    expires=None,
                    concat="final",
                    parts=tuple(parts),
                    owner=owner or ANONYMOUS,
                )
                await self._state.create(upload)
            except BaseException:
                await self._storage.delete(upload_id)
                raise
            await self.observer.changed(upload)
            return upload

    async def _part(self, part_id: str) -> Upload:
        part = await self._state.get(part_id)
        owner = current_owner.get()
        if part is not None and owner is not None and part.owner != owner:
            part = None  # another owner's upload is not there for this one
        if part is None or part.expired(self._now()):
            raise ProtocolError(f"partial upload {part_id} is unknown or expired", 400)
        if part.concat != "partial":
            raise ProtocolError(f"upload {part_id} is not a partial upload", 400)
        if part.length is not None:
            self._check_size(part.length)
        return part

    async def _finished_length(self, parts: Sequence[str]) -> int:
        """The parts' total length, all of them complete (400 if one is not) and sealed, so
        the byte store can assemble them."""
        total = 0
        for part_id in parts:
            part = await self._part(part_id)
            if not part.completed or part.length is None:
                raise ProtocolError(f"partial upload {part_id} is not finished", 400)
            await self._storage.seal(part_id, part.length)
            total += part.length
        self._check_size(total)
        return total

    async def _assemble(self, final: Upload) -> Upload:
        """A final upload still waiting for parts: assembled if they are all complete now."""
        if final.concat != "final" or final.completed:
            return final
        parts = [await self._state.get(p) for p in final.parts]
        if any(p is None or p.expired(self._now()) for p in parts):
            raise ProtocolError(f"a part of upload {final.id} expired or was deleted", 410)
        if not all(p is not None and p.completed for p in parts):
            return final
        try:
            async with self._locker.hold(final.id, _noop):
                current = await self._state.get(final.id)
                if current is None or current.completed:
                    return current or final
                total = await self._finished_length(current.parts)
                size = await self._storage.concatenate(current.id, current.parts)
                if size != total:
                    raise OSError(f"concatenated {size} bytes, expected {total}")
                done = replace(current, length=total, offset=total)
                await self._state.update(done)
            await self.observer.changed(done)
        except UploadLockedError:
            return final  # another request is assembling it right now
        for part_id in done.parts:
            waiting = self._waiting.get(part_id)
            if waiting is not None:
                waiting.discard(done.id)
                if not waiting:
                    del self._waiting[part_id]
        return done

    async def final_length(self, final: Upload) -> int | None:
        """A final upload's length: known once every part's length is (complete or not)."""
        if final.length is not None:
            return final.length
        total = 0
        for part_id in final.parts:
            part = await self._state.get(part_id)
            if part is None or part.length is None:
                return None
            total += part.length
        return total

    async def _part_completed(self, part_id: str) -> None:
        for final_id in list(self._waiting.get(part_id, ())):
            final = await self._state.get(final_id)
            if final is None:
                self._waiting.get(part_id, set()).discard(final_id)
                continue
            with contextlib.suppress(ProtocolError):
                await self._assemble(final)

    async def terminate(self, upload_id: str, stop: Callable[[], None] = _noop) -> None:
        """Delete the upload and its bytes (404 if unknown), stopping a PATCH still writing."""
        async with self._locker.hold(upload_id, stop, preempt=True):
            upload = await self._state.get(upload_id)
            owner = current_owner.get()
            if upload is None or (owner is not None and upload.owner != owner):
                raise ProtocolError(f"no upload {upload_id}", 404)
            await self._forget(upload_id)

    async def _forget(self, upload_id: str) -> None:
        self._digests.forget(upload_id)
        upload = await self._state.get(upload_id)
        await self._state.delete(upload_id)
        await self._storage.delete(upload_id)
        if upload is not None:
            await self.observer.removed(upload)

    async def purge_strays(self, grace: timedelta) -> int:
        """Delete bytes that no upload record names and that nothing touched for `grace`.

        They are what a crash leaves between making an upload's file and recording it (or
        between assembling parts and recording the final upload): no client ever learnt their
        URL. Each id is checked again under its lock before its bytes go. Ages are measured
        on the real clock, the one that dated the files.
        """
        candidates = await self._storage.untouched_since(datetime.now(UTC) - grace)
        if not candidates:
            return 0
        known = await self._state.known(candidates)
        removed = 0
        for upload_id in candidates:
            if upload_id in known:
                continue
            try:
                async with self._locker.hold(upload_id, _noop):
                    if await self._state.get(upload_id) is None:
                        await self._storage.delete(upload_id)
                        removed += 1
            except UploadLockedError:
                continue
        if removed:
            log.info("removed the bytes of %d uploads that had no record", removed)
        return removed

    async def purge_expired(self) -> int:
        """Delete unfinished uploads whose expiry passed, with their bytes; returns how many."""
        purged = 0
        while ids := await self._state.expired(self._now()):
            progressed = False
            for upload_id in ids:
                try:
                    async with self._locker.hold(upload_id, _noop):
                        upload = await self._state.get(upload_id)
                        if upload is not None and upload.expired(self._now()):
                            await self._forget(upload_id)
                            purged += 1
                            progressed = True
                except UploadLockedError:
                    continue  # someone is writing it: not abandoned after all
            if not progressed:
                break
        if purged:
            log.info("removed %d expired uploads", purged)
        return purged
