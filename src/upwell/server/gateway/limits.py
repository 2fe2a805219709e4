"""Per-owner limits (uploads in flight, bytes stored) and the deadline for idle or crawling
request bodies (slowloris): a body that sends nothing for `body_idle_seconds`, or less than
`body_min_rate` bytes/s over a window of `body_rate_window` seconds, is cut off."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ...errors import ProtocolError
from ..keys import SETTINGS
from ..owners import current_owner
from ..settings import ServerSettings
from ..state import ANONYMOUS
from ..uploads import Body, BodyInterrupted
from .keys import GATEWAY

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedBody:
    """A Body that raises BodyInterrupted when the client goes idle or crawls."""

    def __init__(self, body: Body, idle: float, min_rate: int, window: float) -> None:
        self._body = body
        self._idle = idle
        self._min_rate = min_rate
        self._window = window
        self._loop = asyncio.get_running_loop()
        self._window_start = self._loop.time()
        self._window_bytes = 0

    @property
    def declared(self) -> int | None:
        return self._body.declared

    async def read(self) -> bytes:
        deadline = asyncio.timeout(self._idle)
        try:
            async with deadline:
                chunk = await self._body.read()
        except TimeoutError:
            if not deadline.expired():
                raise
            raise BodyInterrupted(f"no body bytes arrived for {self._idle:g} s") from None
        now = self._loop.time()
        self._window_bytes += len(chunk)
        if self._min_rate and now - self._window_start >= self._window:
            rate = self._window_bytes / (now - self._window_start)
            if rate < self._min_rate:
                raise BodyInterrupted(
                    f"the body arrived at {rate:.0f} bytes/s, below this server's"
                    f" {self._min_rate} bytes/s"
                )
            self._window_start, self._window_bytes = now, 0
        return chunk

    def stop(self) -> None:
        self._body.stop()


def guard_body(body: Body, settings: ServerSettings) -> Body:
    """`body` under the server's idle and rate deadline."""
    return GuardedBody(
        body, settings.body_idle_seconds, settings.body_min_rate, settings.body_rate_window
    )


async def quota_cap(request: web.Request) -> int | None:
    """The most bytes the caller's next upload may have under its quota (None: no quota);
    413 when the owner is already at it."""
    quota = request.app[SETTINGS].max_bytes_per_owner
    if quota is None:
        return None
    owner = current_owner.get() or ANONYMOUS
    usage = await request.app[GATEWAY].state.usage(owner)
    remaining = quota - usage.stored_bytes
    if remaining <= 0:
        raise ProtocolError(
            f"owner {owner} stores {usage.stored_bytes} bytes, at its limit of {quota};"
            " delete uploads to make room",
            413,
        )
    return remaining


def _is_body_upload(request: web.Request, base_path: str) -> bool:
    if request.method == "PATCH" or (
        request.method == "POST" and request.headers.get("X-HTTP-Method-Override", "") == "PATCH"
    ):
        return request.path.startswith(base_path)
    if request.method == "POST":
        return request.path == "/upload" or (
            request.path.rstrip("/") == base_path.rstrip("/") and request.body_exists
        )
    return False


def limits_middleware() -> Middleware:
    """Uploads in flight per owner, and the byte quota on tus creation."""
    in_flight: Counter[str] = Counter()

    @web.middleware
    async def limits(request: web.Request, handler: _Handler) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        owner = current_owner.get() or ANONYMOUS
        base_path = settings.base_path
        if (
            request.method == "POST"
            and request.path.rstrip("/") == base_path.rstrip("/")
            and "Upload-Concat" not in request.headers
            and settings.max_bytes_per_owner is not None
        ):
            cap = await quota_cap(request)
            length = request.headers.get("Upload-Length", "")
            if cap is not None and length.isdigit() and int(length) > cap:
                raise ProtocolError(
                    f"an upload of {length} bytes would take owner {owner} past its limit of"
                    f" {settings.max_bytes_per_owner} bytes stored",
                    413,
                )
        if not _is_body_upload(request, base_path):
            return await handler(request)
        limit = settings.max_uploads_per_owner
        if limit is not None and in_flight[owner] >= limit:
            raise ProtocolError(
                f"owner {owner} has {in_flight[owner]} uploads in progress, its limit;"
                " try again when one finishes",
                429,
            )
        in_flight[owner] += 1
        try:
            return await handler(request)
        finally:
            in_flight[owner] -= 1
            if in_flight[owner] <= 0:
                del in_flight[owner]

    return limits
