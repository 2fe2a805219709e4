"""Small pages beside the tus endpoint: the health check and the browser page."""

from __future__ import annotations

import html

from aiohttp import web

from .keys import SETTINGS

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>upwell</title></head>
<body><h1>upwell</h1><p>tus 1.0 uploads at <code>{base_path}</code>.</p></body></html>
"""


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def index(request: web.Request) -> web.StreamResponse:
    base_path = html.escape(request.app[SETTINGS].base_path)
    return web.Response(text=_INDEX.format(base_path=base_path), content_type="text/html")
