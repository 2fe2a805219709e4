"""Read a file in slices with os.pread, hash and stream it, never on the event loop.

Memory is bounded by the slices in flight (one being sent, one read ahead), not by the file
or chunk size. hashlib and os.pread release the GIL, so hashing runs on another core while
the event loop sends. A body sent as it is on disk goes by sendfile: the kernel copies it from
the page cache (where hashing just read it) to the socket, and Python never holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
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
    """A file on disk, opened once; every read is a positioned read of one slice.

    Reads run in threads that a cancelled task cannot stop, so `close` asks them to stop at
    their next slice and waits for them before it closes the descriptor they read from.
    """

    def __init__(self, path: Path, fd: int, fingerprint: Fingerprint) -> None:
        self.path = path
        self.fd = fd
        self.fingerprint = fingerprint
        # The same descriptor as a file object, for loop.sendfile (positioned reads only).
        self.file = open(fd, "rb", buffering=0, closefd=False)  # noqa: SIM115
        self._readers = 0
        self._closing = False
        self._idle = threading.Condition()
        self._buffers: list[bytearray] = []  # hash buffers, reused: fresh pages cost a fault each

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._idle:
            if self._closing:
                raise SourceError(f"{self.path}: the file was closed")
            self._readers += 1
        try:
            yield
        finally:
            with self._idle:
                self._readers -= 1
                self._idle.notify_all()

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
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        with self._idle:
            if self._closing:
                return
            self._closing = True
            while self._readers:
                self._idle.wait()
        self.file.close()  # closefd=False: leaves the descriptor to us
        os.close(self.fd)

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
        with self._reading():
            return self._read_exact(offset, size)

    def _read_exact(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        if len(data) == size:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self.fd, size - got, offset + got)
            if not more:
                raise _shrank(self.path)
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def hash_range(
        self, offset: int, size: int, hashers: Iterable[Any], slice_size: int = HASH_SLICE_SIZE
    ) -> None:
        """Blocking: feed [offset, offset + size) to every hasher, slice by slice.

        Reads into one reused buffer, so hashing a chunk of any size allocates one slice.
        Stops early, leaving the hashers incomplete, when the file is being closed.
        """
        hs = list(hashers)
        pos, end = offset, offset + size
        with self._reading():
            buf = self._take_buffer(slice_size)
            try:
                view = memoryview(buf)
                while pos < end and not self._closing:
                    want = min(len(buf), end - pos)
                    got = os.preadv(self.fd, [view[:want]], pos)
                    if got <= 0:
                        raise _shrank(self.path)
                    for h in hs:
                        h.update(view[:got])
                    pos += got
                view.release()
            finally:
                with self._idle:
                    self._buffers.append(buf)

    def _take_buffer(self, size: int) -> bytearray:
        with self._idle:
            while self._buffers:
                buf = self._buffers.pop()
                if len(buf) == size:
                    return buf
        return bytearray(size)

    async def digest_range(
        self, offset: int, size: int, algorithms: Iterable[str]
    ) -> dict[str, bytes]:
        """Digests of [offset, offset + size) for each algorithm, computed in a thread."""
        hashers = {a: hashlib.new(a) for a in algorithms}
        await asyncio.to_thread(self.hash_range, offset, size, hashers.values())
        return {a: h.digest() for a, h in hashers.items()}


class FileSlices:
    """A range of a file on its way to a socket, one slice at a time.

    Iterating yields the slices as bytes, each read (and, with a `compressor`, compressed) in a
    thread while the one before is sent. `send_to` instead hands the range to the kernel with
    `loop.sendfile`, so file bytes never enter Python: the way for plain, unencoded bodies on
    an ordinary socket. Either way `before_slice(n)` runs before a slice goes out (it may be a
    coroutine function: the throttle, metering bytes on the wire) and `on_slice(n)` after
    (progress, counting file bytes).
    """

    def __init__(
        self,
        source: FileSource,
        offset: int,
        size: int,
        on_slice: Callable[[int], None] | None = None,
        before_slice: Callable[[int], Any] | None = None,
        slice_size: int = SLICE_SIZE,
        compressor: Compressor | None = None,
    ) -> None:
        self.source = source
        self.offset = offset
        self.size = size
        self._on_slice = on_slice
        self._before_slice = before_slice
        self._slice_size = slice_size
        self._compressor = compressor

    @property
    def unencoded(self) -> bool:
        """Whether the bytes go out exactly as they are on disk (so sendfile can carry them)."""
        return self._compressor is None

    async def _before(self, n: int) -> None:
        if self._before_slice is not None and n:
            waited = self._before_slice(n)
            if asyncio.iscoroutine(waited):
                await waited

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._read_slices()

    async def _read_slices(self) -> AsyncIterator[bytes]:
        pos, end = self.offset, self.offset + self.size
        compressor = self._compressor
        source = self.source

        def read(at: int, n: int, last: bool) -> tuple[int, bytes]:
            data = source.read_exact(at, n)
            if compressor is None:
                return n, data
            out = compressor.compress(data)
            return n, out + compressor.flush() if last else out

        def start(at: int) -> asyncio.Future[tuple[int, bytes]]:
            n = min(self._slice_size, end - at)
            return asyncio.ensure_future(asyncio.to_thread(read, at, n, at + n >= end))

        pending = start(pos) if pos < end else None
        try:
            while pending is not None:
                n, data = await pending
                pos += n
                pending = start(pos) if pos < end else None
                await self._before(len(data))
                if data:
                    yield data
                if self._on_slice is not None:
                    self._on_slice(n)
        finally:
            if pending is not None:
                pending.cancel()

    async def send_to(self, transport: asyncio.WriteTransport) -> None:
        """Send the range on `transport` with `loop.sendfile`, slice by slice.

        Raises SendfileNotAvailableError (nothing sent) when the transport or loop cannot do
        it, e.g. TLS; the caller then iterates instead. Only for `unencoded` ranges.
        """
        if not self.unencoded:
            raise asyncio.SendfileNotAvailableError("an encoded body cannot be sent from the file")
        loop = asyncio.get_running_loop()
        pos, end = self.offset, self.offset + self.size
        while pos < end:
            n = min(self._slice_size, end - pos)
            await self._before(n)
            if transport.is_closing():
                raise ConnectionResetError("the connection closed while sending")
            try:
                sent = await loop.sendfile(transport, self.source.file, pos, n, fallback=False)
            except NotImplementedError:  # an event loop without sendfile (uvloop, Windows)
                raise asyncio.SendfileNotAvailableError("this event loop has no sendfile") from None
            except asyncio.SendfileNotAvailableError:
                if pos > self.offset:
                    raise ConnectionResetError("sendfile stopped part way") from None
                raise
            if sent != n:  # the file ended early
                raise _shrank(self.source.path)
            pos += n
            if self._on_slice is not None:
                self._on_slice(n)


def _shrank(path: Path) -> SourceError:
    return SourceError(f"{path}: the file shrank while it was being uploaded")


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
