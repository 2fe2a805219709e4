"""`create_app(settings)`: the aiohttp application of `upwell serve`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import hdrs, web

from ..errors import ProtocolError
from ..protocols import tus as tus_protocol
from . import cors, pages, tus
from .backends import open_backends
from .cleanup import sweep_expired
from .clock import Clock
from .keys import SETTINGS, UPLOADS, WRITES
from .locks import Locker
from .settings import ServerSettings
from .uploads import Uploads

log = logging.getLogger("upwell.server")

# Upload bodies are streamed from request.content and never read whole, so this bounds only
# request.read()/post() of small JSON or form endpoints.
CLIENT_MAX_SIZE = 1024 * 1024

WRITES_SHUTDOWN_TIMEOUT = 10.0  # seconds writes get to commit when the server stops

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    settings: ServerSettings, *, clock: Clock | None = None, locker: Locker | None = None
) -> web.Application:
    """The tus server at settings.base_path, GET of uploads, /healthz and a page at /."""
    clock = clock or Clock()
    app = web.Application(
        middlewares=[_errors],
        client_max_size=CLIENT_MAX_SIZE,
        handler_args={
            "max_field_size": settings.max_field_size,
            "read_bufsize": settings.read_bufsize,
            # Compressed PATCH bodies are tus.request_body's decision, not aiohttp's.
            "auto_decompress": False,
        },
    )
    app[SETTINGS] = settings
    app[WRITES] = set()
    app.cleanup_ctx.append(_resources(settings, clock, locker))
    app.on_response_prepare.append(_add_headers)
    tus.add_routes(app, settings.base_path)
    app.router.add_get("/healthz", pages.healthz)
    app.router.add_get("/readyz", pages.readyz)
    app.router.add_get("/", pages.index)
    return app


def _resources(
    settings: ServerSettings, clock: Clock, locker: Locker | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            backends = await open_backends(settings, clock, stack, locker)
            uploads = Uploads(
                settings, backends.state, backends.storage, backends.locker, now=clock.now
            )
            app[UPLOADS] = uploads
            sweeper = asyncio.create_task(
                sweep_expired(uploads, settings.cleanup_interval, clock.sleep),
                name="upwell-expiry-sweep",
            )
            yield
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            # Connections are closed by now, so running writes end soon: let them commit.
            writes = app[WRITES]
            if writes:
                await asyncio.wait(list(writes), timeout=WRITES_SHUTDOWN_TIMEOUT)

    return resources


def _text(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    line = " ".join(reason.split())[:300] or "error"
    return web.Response(status=status, text=line + "\n", headers=headers)


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every refusal is a status and one plain-text line; never a traceback."""
    settings = request.app[SETTINGS]
    origin = cors.allowed_origin(request, settings.cors_origins)
    if origin is not None and cors.is_preflight(request):
        return web.Response(
            status=204, headers=cors.preflight_headers(origin, settings.cors_max_age)
        )
    try:
        return await handler(request)
    except ProtocolError as exc:
        headers = {"Tus-Version": tus_protocol.TUS_VERSION} if exc.status == 412 else None
        return _text(exc.status, str(exc), headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = {k: v for k, v in exc.headers.items() if k not in _BODY_HEADERS}
        return _text(exc.status, exc.text or exc.reason, kept)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Not the client's fault, and not a bug: say so, and that nothing was lost.
            log.error("%s %s: storage is full (%s)", request.method, request.path, exc)
            return _text(507, "the server's storage is full; the upload's offset is unchanged")
        log.exception("%s %s failed", request.method, request.path)
        return _text(500, "internal server error; the upload's offset is unchanged")
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _text(500, "internal server error; the upload's offset is unchanged")


_BODY_HEADERS = frozenset({hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_ENCODING})


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    if request.path.startswith(settings.base_path) or request.path == settings.base_path[:-1]:
        response.headers["Tus-Resumable"] = tus_protocol.TUS_VERSION
    origin = cors.allowed_origin(request, settings.cors_origins)
    if origin is not None:
        cors.add_response_headers(response, origin)
