"""Read a file in slices with os.pread, hash and stream it, never on the event loop.

Memory is bounded by the slices in flight (one being sent, one read ahead), not by the file
or chunk size. hashlib and os.pread release the GIL, so hashing runs on another core while
the event loop sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .compress import Compressor

SLICE_SIZE = 1024 * 1024
HASH_SLICE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a file's content cheaply: a change here means the file changed."""

    size: int
    mtime_ns: int
    inode: int
    device: int


class FileSource:
    """A file on disk, opened once; every read is a positioned read of one slice."""

    def __init__(self, path: Path, fd: int, fingerprint: Fingerprint) -> None:
        self.path = path
        self.fd = fd
        self.fingerprint = fingerprint

    @property
    def size(self) -> int:
        return self.fingerprint.size

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> FileSource:
        return await asyncio.to_thread(cls._open_sync, Path(path))

    @classmethod
    def _open_sync(cls, path: Path) -> FileSource:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise SourceError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise SourceError(f"{path}: is a directory, not a file") from None
        except PermissionError:
            raise SourceError(f"{path}: permission denied") from None
        except OSError as exc:
            raise SourceError(f"{path}: cannot open ({exc.strerror})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise SourceError(f"{path}: not a regular file")
        return cls(path, fd, _fingerprint(st))

    async def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            await asyncio.to_thread(os.close, fd)

    async def check_unchanged(self) -> None:
        """Raise SourceError if the file's size or mtime moved since it was opened."""
        st = await asyncio.to_thread(os.stat, self.path)
        now = _fingerprint(st)
        if now != self.fingerprint:
            raise SourceError(
                f"{self.path}: the file changed while it was being uploaded "
                f"(size {self.fingerprint.size} -> {now.size}); upload it again when it is stable"
            )

    def read_exact(self, offset: int, size: int) -> bytes:
        """Blocking: read exactly `size` bytes at `offset` (run in a thread)."""
        data = os.pread(self.fd, size, offset)
        if len(data) == size:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self.fd, size - got, offset + got)
            if not more:
                raise SourceError(f"{self.path}: the file shrank while it was being uploaded")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def hash_range(
        self, offset: int, size: int, hashers: Iterable[Any], slice_size: int = HASH_SLICE_SIZE
    ) -> None:
        """Blocking: feed [offset, offset + size) to every hasher, slice by slice.

        Reads into one reused buffer, so hashing a chunk of any size allocates one slice.
        """
        hs = list(hashers)
        buf = bytearray(min(slice_size, max(size, 1)))
        view = memoryview(buf)
        pos, end = offset, offset + size
        while pos < end:
            want = min(len(buf), end - pos)
            got = os.preadv(self.fd, [view[:want]], pos)
            if got <= 0:
                raise SourceError(f"{self.path}: the file shrank while it was being uploaded")
            for h in hs:
                h.update(view[:got])
            pos += got

    async def digest_range(
        self, offset: int, size: int, algorithms: Iterable[str]
    ) -> dict[str, bytes]:
        """Digests of [offset, offset + size) for each algorithm, computed in a thread."""
        hashers = {a: hashlib.new(a) for a in algorithms}
        await asyncio.to_thread(self.hash_range, offset, size, hashers.values())
        return {a: h.digest() for a, h in hashers.items()}

    async def stream_range(
        self,
        offset: int,
        size: int,
        on_slice: Callable[[int], None] | None = None,
        before_slice: Callable[[int], Any] | None = None,
        slice_size: int = SLICE_SIZE,
        compressor: Compressor | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield [offset, offset + size) in slices, reading the next one while this one is sent.

        With a `compressor`, each slice is compressed in the same thread call that reads it.
        `before_slice(n)` may be a coroutine function (the throttle, metering the bytes that go
        on the wire); `on_slice(n)` counts file bytes handed on (progress).
        """
        pos, end = offset, offset + size

        def read(at: int, n: int, last: bool) -> tuple[int, bytes]:
            data = self.read_exact(at, n)
            if compressor is None:
                return n, data
            out = compressor.compress(data)
            return n, out + compressor.flush() if last else out

        def start(at: int) -> asyncio.Future[tuple[int, bytes]]:
            n = min(slice_size, end - at)
            return asyncio.ensure_future(asyncio.to_thread(read, at, n, at + n >= end))

        pending = start(pos) if pos < end else None
        try:
            while pending is not None:
                n, data = await pending
                pos += n
                pending = start(pos) if pos < end else None
                if before_slice is not None and data:
                    waited = before_slice(len(data))
                    if asyncio.iscoroutine(waited):
                        await waited
                if data:
                    yield data
                if on_slice is not None:
                    on_slice(n)
        finally:
            if pending is not None:
                pending.cancel()


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
