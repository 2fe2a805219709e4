"""One access log line per request, request metrics, `/metrics` and `/readyz`.

The log line names the method, the path with upload ids cut to 8 characters (an upload URL
is as good as a key to the upload), the status, bytes sent, seconds and owner; never a
header, a query string or a token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .gateway.keys import METRICS
from .keys import SETTINGS, UPLOADS
from .metrics import CONTENT_TYPE
from .owners import OWNER

access_log = logging.getLogger("upwell.access")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UPLOAD_ID = re.compile(r"([0-9a-f]{8})[0-9a-f]{24}")
_PROBE_ID = "0" * 32


def loggable_path(path: str) -> str:
    """The path with upload ids shortened: enough to correlate, not enough to use."""
    return _UPLOAD_ID.sub(r"\1…", path[:300])


@web.middleware
async def observe(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Access log and request metrics around every request."""
    start = time.perf_counter()
    metrics = request.app[METRICS]
    settings = request.app[SETTINGS]
    is_upload = request.path.startswith(settings.base_path) or request.path == "/upload"
    receiving = is_upload and request.method in ("POST", "PATCH")
    if receiving:
        metrics.active.inc()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - start
        if receiving:
            metrics.active.dec()
        if is_upload and request.method != "OPTIONS":
            metrics.requests.labels(method=request.method, status=str(status)).inc()
            if request.method == "PATCH":
                metrics.patch_latency.observe(elapsed)
        sent = _sent(response)
        owner = request.get(OWNER) or "-"
        access_log.info(
            "%s %s %s %d %s %.3fs %s",
            request.remote or "-",
            request.method,
            loggable_path(request.path),
            status,
            sent,
            elapsed,
            owner,
        )


def _sent(response: web.StreamResponse | None) -> int:
    if response is None or not response.prepared:
        return 0
    if isinstance(response, web.Response) and response.body is not None:
        return response.content_length or 0
    return response.body_length


async def metrics_page(request: web.Request) -> web.StreamResponse:
    """GET /metrics: Prometheus text format."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def readyz(request: web.Request) -> web.StreamResponse:
    """GET /readyz: 200 when the state store answers and the storage is reachable."""
    uploads = request.app[UPLOADS]
    problems = []
    try:
        async with asyncio.timeout(5):
            await uploads.probe_state(_PROBE_ID)
    except Exception as exc:  # any failure means not ready; say which
        problems.append(f"state store: {type(exc).__name__}")
    try:
        async with asyncio.timeout(5):
            await uploads.probe_storage(_PROBE_ID)
    except Exception as exc:
        problems.append(f"storage: {type(exc).__name__}")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})
