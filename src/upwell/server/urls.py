"""URLs of uploads as the client sees them, also behind reverse proxies."""

from __future__ import annotations

import re

from aiohttp import web
from yarl import URL

from ..errors import ProtocolError
from .ids import is_upload_id

# host, host:port, or [v6]:port; anything else in a forwarded header is ignored.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _first(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def public_origin(request: web.Request, trust_proxy: bool) -> str:
    """`scheme://host[:port]` the client used; from Forwarded / X-Forwarded-* when trusted."""
    host: str | None = None
    proto: str | None = None
    if trust_proxy:
        forwarded = request.forwarded
        if forwarded:
            host = forwarded[0].get("host")
            proto = forwarded[0].get("proto")
        host = host or _first(request.headers.get("X-Forwarded-Host"))
        proto = proto or _first(request.headers.get("X-Forwarded-Proto"))
    if not host or not _HOST.match(host):
        host = request.host
    if proto is None or proto.lower() not in ("http", "https"):
        proto = request.scheme
    return f"{proto.lower()}://{host}"


def upload_url(request: web.Request, base_path: str, upload_id: str, trust_proxy: bool) -> str:
    return f"{public_origin(request, trust_proxy)}{base_path}{upload_id}"


def upload_id_from_url(value: str, base_path: str) -> str:
    """The id in an upload's URL or path (Upload-Concat parts); 400 if it names none of ours."""
    try:
        path = URL(value).path
    except ValueError:
        path = ""
    candidate = path[len(base_path) :] if path.startswith(base_path) else ""
    if not is_upload_id(candidate):
        raise ProtocolError(f"{value[:80]!r} is not an upload URL of this server", 400)
    return candidate
