"""Upload bytes: `ByteStore` is the interface; `files.FileByteStore` keeps them in a directory.

Every file operation runs on a bounded pool of I/O threads, never on the event loop. A writer
appends request bodies in large batches with one write in flight while the next batch is read
from the socket, checksums each batch in a second thread beside its write (hashlib releases
the GIL), and fsyncs once, when the request ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

# Linux caps one pwritev at IOV_MAX (1024) buffers.
MAX_BATCH_BUFFERS = 512


@dataclass(frozen=True)
class Checksum:
    """What the client says the appended bytes hash to (Upload-Checksum)."""

    algorithm: str  # a hashlib name: sha1, sha256, md5
    digest: bytes


@dataclass(frozen=True)
class Appended:
    """The outcome of one append: bytes kept, and whether a sent checksum matched."""

    kept: int
    checksum_mismatch: bool = False


class ByteWriter(Protocol):
    """Appends one request's bytes to an upload, starting at the offset it was opened at."""

    async def write(self, buffers: list[bytes]) -> None:
        """Queue buffers for writing; returns once the previous batch is written."""

    async def finish(self, tail: list[bytes], *, keep: bool = True) -> Appended:
        """Write the tail, then make the bytes durable, or roll all of them back.

        The bytes are rolled back when `keep` is false or a checksum was given and does not
        match what was written; either way the writer is closed.
        """


class ByteStore(Protocol):
    """Where upload bytes live; ids are already validated (32 hex characters)."""

    async def create(self, upload_id: str) -> None:
        """Make an empty upload."""

    async def open_writer(
        self, upload_id: str, offset: int, checksum: Checksum | None = None
    ) -> ByteWriter:
        """A writer appending at `offset`; bytes past `offset` (a crash's leftovers) are cut."""

    async def concatenate(self, upload_id: str, parts: Sequence[str]) -> int:
        """Make an empty upload the parts' bytes in order; returns its size."""

    async def delete(self, upload_id: str) -> None:
        """Remove the upload's bytes; a missing upload is not an error."""

    async def seal(self, upload_id: str, length: int) -> None:
        """The upload is complete at `length` bytes: make them readable as one (idempotent)."""

    def read(self, upload_id: str, start: int, stop: int) -> AsyncIterator[bytes]:
        """A sealed upload's bytes [start, stop), in slices."""

    async def segments(self, upload_id: str) -> list[Path] | None:
        """The local files whose bytes, in order, are the upload (None: not on local disk)."""

    async def sha256(self, upload_id: str) -> bytes:
        """SHA-256 of the upload's stored bytes (read back, so it covers assembly too)."""

    async def untouched_since(self, when: datetime) -> list[str]:
        """Ids of uploads whose bytes have not changed since `when` (stray-file candidates)."""

    async def close(self) -> None:
        """Finish pending work and release threads."""


from .files import FileByteStore  # noqa: E402

__all__ = ["MAX_BATCH_BUFFERS", "Appended", "ByteStore", "ByteWriter", "Checksum", "FileByteStore"]
