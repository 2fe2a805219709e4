"""Small pages beside the tus endpoint: the health check and the browser page."""

from __future__ import annotations

import html

from aiohttp import web

from .keys import SETTINGS, UPLOADS

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>upwell</title></head>
<body><h1>upwell</h1><p>tus 1.0 uploads at <code>{base_path}</code>.</p></body></html>
"""


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready when the state store answers: a replica without its database takes no traffic."""
    try:
        await request.app[UPLOADS].check_state()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return web.json_response({"status": "unavailable", "reason": reason}, status=503)
    return web.json_response({"status": "ok"})


async def index(request: web.Request) -> web.StreamResponse:
    base_path = html.escape(request.app[SETTINGS].base_path)
    return web.Response(text=_INDEX.format(base_path=base_path), content_type="text/html")
