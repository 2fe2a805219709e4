"""The I/O boundary: aiohttp requests whose failures become TargetErrors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from yarl import URL

from ..engine.reader import FileSlices
from ..errors import TargetError
from .base import Body

log = logging.getLogger("upwell")


class FilePayload(Payload):
    """A request body read from a file range: by sendfile when the bytes go as they are on an
    ordinary socket, else slice by slice through aiohttp's writer (TLS, gzip). Unencoded, its
    length is known, so the request carries Content-Length; encoded, it goes chunked. `head`
    and `tail` are small bytes sent before and after the range (a multipart body's framing)."""

    def __init__(
        self, slices: FileSlices, content_type: str, head: bytes = b"", tail: bytes = b""
    ) -> None:
        super().__init__(slices, content_type=content_type)
        self._slices = slices
        self._head = head
        self._tail = tail
        if slices.unencoded:
            self._size = len(head) + slices.size + len(tail)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file body is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        if self._head:
            await writer.write(self._head)
        await self._write_range(writer)
        if self._tail:
            await writer.write(self._tail)

    async def _write_range(self, writer: AbstractStreamWriter) -> None:
        slices = self._slices
        transport = writer.transport
        if slices.unencoded and transport is not None and _plain_socket(transport):
            writer.send_headers()
            await writer.drain()
            try:
                await slices.send_to(transport)
            except asyncio.SendfileNotAvailableError:
                pass  # nothing was sent: go the ordinary way
            else:
                log.debug("sent %d bytes at offset %d by sendfile", slices.size, slices.offset)
                return
        async for data in slices:
            await writer.write(data)
        log.debug("sent %d bytes at offset %d read in slices", slices.size, slices.offset)


def _plain_socket(transport: asyncio.BaseTransport) -> bool:
    return (
        transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
    )


def body_payload(
    body: Body, content_type: str, head: bytes = b"", tail: bytes = b""
) -> FilePayload:
    """The aiohttp payload that sends `body` (between `head` and `tail`, when given)."""
    return FilePayload(body.stream, content_type, head, tail)


@asynccontextmanager
async def request(
    http: aiohttp.ClientSession, method: str, url: str | URL, what: str, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientResponse]:
    """`http.request(...)`, with connection failures raised as retryable TargetErrors.

    `what` names the operation for the message ("PATCH chunk 3"); URLs are left out of
    messages because an upload URL can be a credential.
    """
    try:
        async with http.request(method, url, **kwargs) as response:
            yield response
    except TargetError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise TargetError(f"{what}: connection failed ({detail})", retryable=True) from exc


def new_session(
    *, connections: int, connect_timeout: float, read_timeout: float
) -> aiohttp.ClientSession:
    """The one pooled HTTP session an uploader uses for everything."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)
