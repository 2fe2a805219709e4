"""CORS for browsers (tus-js-client, Uppy): allowed origins, exposed tus headers, preflights."""

from __future__ import annotations

from aiohttp import hdrs, web

from ..protocols import tus

ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE, OPTIONS"
# Beyond tus: the page reads SSE with fetch and resumes with Last-Event-ID.
GATEWAY_HEADERS = ("Last-Event-ID", "Accept", "Cache-Control")


def allowed_origin(request: web.Request, origins: tuple[str, ...]) -> str | None:
    """The Origin to echo back, or None when this origin is not allowed (or none was sent)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return None
    if "*" in origins or origin in origins:
        return origin
    return None


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def preflight_headers(origin: str, max_age: int) -> dict[str, str]:
    return {
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join((*tus.ALLOWED_HEADERS, *GATEWAY_HEADERS)),
        hdrs.ACCESS_CONTROL_MAX_AGE: str(max_age),
    }


def add_response_headers(response: web.StreamResponse, origin: str) -> None:
    # Echo the origin rather than "*" so credentialed requests (bearer tokens) work too.
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(tus.EXPOSED_HEADERS)
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)
