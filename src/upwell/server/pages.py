"""Small pages beside the tus endpoint: the health check and the browser page with its assets."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .keys import SETTINGS

STATIC_DIR = Path(__file__).resolve().parent / "static"
_CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
}
# The page loads only its own assets and talks only to this server.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, _Asset]:
    # A few small files, read once at import so no handler touches the disk.
    assets = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is not None and path.is_file():
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            assets[path.name] = _Asset(body, content_type, etag)
    return assets


_ASSETS = _load_assets()


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def index(request: web.Request) -> web.StreamResponse:
    base_path = html.escape(request.app[SETTINGS].base_path)
    page = _ASSETS["index.html"].body.decode().replace("{base_path}", base_path)
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


async def static(request: web.Request) -> web.StreamResponse:
    asset = _ASSETS.get(request.match_info["name"])
    if asset is None or asset.content_type == "text/html":
        raise web.HTTPNotFound(text="no such file")
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
