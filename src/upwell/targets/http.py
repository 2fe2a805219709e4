"""The I/O boundary: aiohttp requests whose failures become TargetErrors."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.payload import AsyncIterablePayload

from ..errors import TargetError


class SizedStream(AsyncIterablePayload):
    """A streamed body of known length, so the request carries Content-Length, not chunks."""

    def __init__(self, stream: AsyncIterable[bytes], size: int, content_type: str) -> None:
        super().__init__(stream, content_type=content_type)
        self._size = size


@asynccontextmanager
async def request(
    http: aiohttp.ClientSession, method: str, url: str, what: str, **kwargs: Any
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
