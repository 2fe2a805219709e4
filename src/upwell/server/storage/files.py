"""`FileByteStore`: upload bytes as one file per upload under a directory."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..ids import is_upload_id
from . import Appended, Checksum

T = TypeVar("T")
READ_SLICE = 1024 * 1024

#: Write-behind: once this many bytes of a request are written, the kernel is asked to start
#: writing them to disk (sync_file_range, not waiting), so the fsync before the answer only
#: waits for the last few MiB instead of the whole body.
WRITE_BEHIND = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """libc's sync_file_range (Linux), or None where there is none."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # a hint: failures change nothing

    return start_writeback


_start_writeback = _load_sync_file_range()


class FileByteStore:
    """Bytes as one file per upload: `<root>/<id>`."""

    def __init__(self, root: Path, threads: int) -> None:
        self._root = root
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upwell-io")

    @classmethod
    async def open(cls, root: Path, threads: int) -> FileByteStore:
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        return cls(root, threads)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def local_path(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id[:40]!r}")
        return self._root / upload_id

    async def create(self, upload_id: str) -> None:
        await self._run(_create_file, self.local_path(upload_id))

    async def open_writer(
        self, upload_id: str, offset: int, checksum: Checksum | None = None
    ) -> FileWriter:
        fd = await self._run(_open_at, self.local_path(upload_id), offset)
        return FileWriter(self._executor, fd, offset, checksum)

    def _parts_dir(self, upload_id: str) -> Path:
        return self._root / f"{self.local_path(upload_id).name}.parts"

    async def concatenate(self, upload_id: str, parts: Sequence[str]) -> int:
        # Finished partial uploads never change again, so the final upload is hard links to
        # them: no copy, however large, and deleting a partial later leaves these bytes alone.
        paths = [self.local_path(part) for part in parts]
        return await self._run(_link_parts, self._parts_dir(upload_id), paths)

    async def segments(self, upload_id: str) -> list[Path]:
        return await self._run(_segments, self.local_path(upload_id), self._parts_dir(upload_id))

    async def seal(self, upload_id: str, length: int) -> None:
        """Nothing to do: every fsynced byte is already where GET reads it."""

    async def read(self, upload_id: str, start: int, stop: int) -> AsyncIterator[bytes]:
        base = 0
        for path in await self.segments(upload_id):
            size = (await self._run(os.stat, path)).st_size
            lo, hi = max(start, base), min(stop, base + size)
            if lo < hi:
                fd = await self._run(os.open, path, os.O_RDONLY)
                try:
                    position = lo - base
                    while position < hi - base:
                        data = await self._run(
                            os.pread, fd, min(READ_SLICE, hi - base - position), position
                        )
                        if not data:
                            raise OSError(f"{path.name} is shorter than recorded")
                        yield data
                        position += len(data)
                finally:
                    await self._run(os.close, fd)
            base += size

    async def delete(self, upload_id: str) -> None:
        await self._run(_delete, self.local_path(upload_id), self._parts_dir(upload_id))

    async def sha256(self, upload_id: str) -> bytes:
        return await self._run(_sha256_of, await self.segments(upload_id))

    async def untouched_since(self, when: datetime) -> list[str]:
        return await self._run(_untouched_since, self._root, when.timestamp())

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)


class FileWriter:
    """Appends to one open file: `os.pwritev` per batch, one fsync at the end."""

    def __init__(
        self, executor: ThreadPoolExecutor, fd: int, start: int, checksum: Checksum | None
    ) -> None:
        self._executor = executor
        self._fd = fd
        self._start = start
        self._position = start  # where the next submitted batch goes
        self._written = 0  # bytes the threads have written so far
        self._checksum = checksum
        self._hasher = hashlib.new(checksum.algorithm) if checksum else None
        self._pending: list[Future[None]] = []
        self._flushed = start  # writeback was started for the bytes before this offset

    async def _wait_pending(self) -> None:
        pending, self._pending = self._pending, []
        outcomes = await asyncio.gather(
            *(asyncio.wrap_future(f) for f in pending), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def write(self, buffers: list[bytes]) -> None:
        await self._wait_pending()
        size = sum(len(b) for b in buffers)
        # The checksum and the write of one batch run in two threads at once (both release
        # the GIL); batches still go one at a time, so each hashes and lands in order.
        self._pending.append(self._executor.submit(self._write_batch, buffers, self._position))
        if self._hasher is not None:
            self._pending.append(self._executor.submit(self._hash_batch, buffers))
        self._position += size

    async def finish(self, tail: list[bytes], *, keep: bool = True) -> Appended:
        try:
            await self._wait_pending()
        except BaseException:
            await asyncio.wrap_future(self._executor.submit(self._end, [], False))
            raise
        return await asyncio.wrap_future(self._executor.submit(self._end, tail, keep))

    def _hash_batch(self, buffers: list[bytes]) -> None:
        assert self._hasher is not None
        for buffer in buffers:
            self._hasher.update(buffer)

    def _write_batch(self, buffers: list[bytes], position: int) -> None:
        views = [memoryview(b) for b in buffers if b]
        while views:
            done = os.pwritev(self._fd, views, position)
            self._written += done
            position += done
            while views and done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            if done:
                views[0] = views[0][done:]
        end = self._start + self._written
        if _start_writeback is not None and end - self._flushed >= WRITE_BEHIND:
            _start_writeback(self._fd, self._flushed, end - self._flushed)
            self._flushed = end

    def _end(self, tail: list[bytes], keep: bool) -> Appended:
        mismatch = False
        try:
            if keep and tail:
                if self._hasher is not None:
                    self._hash_batch(tail)
                self._write_batch(tail, self._start + self._written)
            if keep and self._checksum is not None and self._hasher is not None:
                mismatch = not hmac.compare_digest(self._hasher.digest(), self._checksum.digest)
                keep = not mismatch
            if not keep and self._written:
                os.ftruncate(self._fd, self._start)
                self._written = 0
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        return Appended(kept=self._written, checksum_mismatch=mismatch)


def _sha256_of(paths: list[Path], slice_size: int = 1024 * 1024) -> bytes:
    digest = hashlib.sha256()
    buf = bytearray(slice_size)
    view = memoryview(buf)
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
    return digest.digest()


def _create_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    _fsync_dir(path.parent)


def _open_at(path: Path, offset: int) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != offset:
            # Bytes past the recorded offset were never acknowledged (a crash between write and
            # commit): drop them so file size and offset agree again.
            os.ftruncate(fd, offset)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_parts(parts_dir: Path, parts: list[Path]) -> int:
    """Hard-link `parts` into `parts_dir` as 000000, 000001, … (built aside, then renamed in)."""
    staging = parts_dir.with_name(parts_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    total = 0
    try:
        for index, part in enumerate(parts):
            link = staging / f"{index:06d}"
            os.link(part, link)
            total += link.stat().st_size
        _fsync_dir(staging)
        os.replace(staging, parts_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(parts_dir.parent)
    return total


def _untouched_since(root: Path, cutoff: float) -> list[str]:
    """Upload ids under `root` (a file `<id>`, a directory `<id>.parts`, or its `.tmp` staging)
    whose every entry was last modified before `cutoff`."""
    newest: dict[str, float] = {}
    with os.scandir(root) as entries:
        for entry in entries:
            upload_id = entry.name.split(".", 1)[0]
            if not is_upload_id(upload_id) or entry.name not in (
                upload_id,
                f"{upload_id}.parts",
                f"{upload_id}.parts.tmp",
            ):
                continue  # not ours: never touched
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            newest[upload_id] = max(mtime, newest.get(upload_id, mtime))
    return sorted(i for i, mtime in newest.items() if mtime < cutoff)


def _segments(path: Path, parts_dir: Path) -> list[Path]:
    if parts_dir.is_dir():
        return sorted(parts_dir.iterdir())
    return [path]


def _delete(path: Path, parts_dir: Path) -> None:
    path.unlink(missing_ok=True)
    shutil.rmtree(parts_dir, ignore_errors=True)
    shutil.rmtree(parts_dir.with_name(parts_dir.name + ".tmp"), ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
