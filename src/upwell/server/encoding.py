"""Content-Encoding of request bodies: gzip decoded as it streams, in bounded pieces.

Offsets count decoded bytes. Each piece of output is at most PIECE bytes, and the caller stops
reading once the upload's remaining length is exceeded, so a small body that inflates to
gigabytes (a zip bomb) costs at most one piece of memory and is refused with 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, cast

from isal import isal_zlib

from ..errors import ProtocolError
from .uploads import Body

#: Content codings upwell serve decodes (advertised in OPTIONS as RFC 7694 Accept-Encoding).
ACCEPTED = ("gzip",)
PIECE = 1024 * 1024
#: Compressed bytes gathered before one decompression call in a thread.
INPUT_BATCH = 256 * 1024
GZIP_WBITS = 31
# isal's stubs do not declare IsalError as an exception class; it is one (an Exception).
_GZIP_ERRORS: tuple[type[Exception], ...] = (cast(type[Exception], isal_zlib.IsalError),)


class _Raw(Protocol):
    def read(self) -> Awaitable[bytes]: ...

    def stop(self) -> None: ...


class GzipBody:
    """A gzip request body, decoded off the event loop; `declared` is unknown (None)."""

    declared: int | None = None

    def __init__(self, raw: _Raw) -> None:
        self._raw = raw
        self._decoder = isal_zlib.decompressobj(GZIP_WBITS)
        self._input_done = False

    def stop(self) -> None:
        self._raw.stop()

    def _inflate(self, data: bytes) -> bytes:
        try:
            return bytes(self._decoder.decompress(data, PIECE))
        except _GZIP_ERRORS as exc:
            raise ProtocolError(f"the body is not valid gzip ({exc})", 400) from None

    async def read(self) -> bytes:
        while True:
            tail = self._decoder.unconsumed_tail
            if tail:
                out = await asyncio.to_thread(self._inflate, tail)
            elif self._input_done:
                if not self._decoder.eof:
                    raise ProtocolError("the gzip body is truncated", 400)
                return b""
            else:
                data = await self._gather()
                if not data:
                    self._input_done = True
                    continue
                if self._decoder.eof:
                    raise ProtocolError("data follows the end of the gzip body", 400)
                out = await asyncio.to_thread(self._inflate, data)
            if out:
                return out

    async def _gather(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < INPUT_BATCH:
            chunk = await self._raw.read()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)


def decoded_body(raw: _Raw, encoding: str) -> Body:
    """`raw` decoded per its Content-Encoding; 415 for codings we do not decode."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw  # type: ignore[return-value]
    if encoding == "gzip":
        return GzipBody(raw)
    raise ProtocolError(
        f"Content-Encoding {encoding[:20]!r} is not supported; use gzip or none", 415
    )
