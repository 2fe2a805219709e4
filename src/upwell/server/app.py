"""`create_app(settings)`: the aiohttp application of `upwell serve`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiohttp import hdrs, web

from ..errors import ProtocolError
from ..protocols import tus as tus_protocol
from . import cors, observe, pages, tus
from .auth import auth_middleware
from .cleanup import sweep_expired
from .clock import Clock
from .gateway import receive, routes
from .gateway.events import EventBus, MemoryEventBus
from .gateway.forwarding import ForwardPolicy, ForwardTarget
from .gateway.keys import GATEWAY, METRICS, STREAMS
from .gateway.limits import limits_middleware
from .gateway.service import Gateway
from .keys import SETTINGS, UPLOADS, WRITES
from .locks import Locker, MemoryLocker
from .metrics import Metrics, probe_loop_lag
from .settings import ServerSettings
from .state import SQLiteStateStore
from .storage import FileByteStore
from .uploads import Uploads

log = logging.getLogger("upwell.server")

# Upload bodies are streamed from request.content and never read whole, so this bounds only
# request.read()/post() of small JSON or form endpoints.
CLIENT_MAX_SIZE = 1024 * 1024

WRITES_SHUTDOWN_TIMEOUT = 10.0  # seconds writes get to commit when the server stops

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    settings: ServerSettings,
    *,
    clock: Clock | None = None,
    locker: Locker | None = None,
    forwards: Sequence[ForwardTarget] = (),
    bus: EventBus | None = None,
) -> web.Application:
    """The tus server at settings.base_path, GET of uploads, the gateway (POST /upload, the
    catalog, events, forwarding to `forwards`), /metrics, /healthz, /readyz and a page at /."""
    clock = clock or Clock()
    app = web.Application(
        middlewares=[
            observe.observe,
            _errors,
            auth_middleware(settings.tokens),
            limits_middleware(),
        ],
        client_max_size=CLIENT_MAX_SIZE,
        handler_args={
            "max_field_size": settings.max_field_size,
            "max_line_size": settings.max_line_size,
            "max_headers": settings.max_headers,
            "read_bufsize": settings.read_bufsize,
            # Compressed PATCH bodies are tus.request_body's decision, not aiohttp's.
            "auto_decompress": False,
        },
    )
    app[SETTINGS] = settings
    app[WRITES] = set()
    streams: set[asyncio.Task[Any]] = set()
    app[STREAMS] = streams
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_resources(settings, clock, locker, forwards, bus or MemoryEventBus()))
    app.on_response_prepare.append(_add_headers)
    app.on_shutdown.append(_end_streams)
    tus.add_routes(app, settings.base_path)
    routes.add_routes(app)
    app.router.add_post("/upload", receive.post_upload)
    app.router.add_get("/metrics", observe.metrics_page)
    app.router.add_get("/healthz", pages.healthz)
    app.router.add_get("/readyz", observe.readyz)
    pages.add_routes(app)
    if settings.mcp_roots is not None:
        from ..mcp.http import mount_mcp  # the optional mcp extra, loaded only when asked

        mount_mcp(app, settings)
    return app


async def _end_streams(app: web.Application) -> None:
    streams: set[asyncio.Task[Any]] = app[STREAMS]
    for task in list(streams):
        task.cancel()


def _resources(
    settings: ServerSettings,
    clock: Clock,
    locker: Locker | None,
    forwards: Sequence[ForwardTarget],
    bus: EventBus,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            state = await SQLiteStateStore.open(settings.state_path)
            stack.push_async_callback(state.close)
            storage = await FileByteStore.open(settings.files_dir, settings.io_threads)
            stack.push_async_callback(storage.close)
            gateway = Gateway(state, bus, app[METRICS], settings.base_path, clock.now)
            uploads = Uploads(
                settings,
                state,
                storage,
                locker
                or MemoryLocker(
                    settings.stale_writer_seconds, clock.monotonic, settings.lock_wait_seconds
                ),
                now=clock.now,
                observer=gateway,
            )
            app[UPLOADS] = uploads
            app[GATEWAY] = gateway
            policy = ForwardPolicy(
                max_attempts=settings.forward_attempts,
                backoff=settings.forward_backoff,
                concurrency=settings.forward_concurrency,
                engine_retries=settings.forward_retries,
                chunk_size=settings.forward_chunk_size,
            )
            gateway.attach(uploads, forwards, settings.forward_sessions_dir, policy)
            assert gateway.forwarder is not None
            await gateway.forwarder.start()
            stack.push_async_callback(gateway.forwarder.close)
            lag = asyncio.create_task(probe_loop_lag(app[METRICS]), name="upwell-loop-lag")
            sweeper = asyncio.create_task(
                sweep_expired(uploads, settings.cleanup_interval, clock.sleep),
                name="upwell-expiry-sweep",
            )
            yield
            for task in (sweeper, lag):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
