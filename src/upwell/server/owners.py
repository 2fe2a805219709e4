"""Who is asking: the owner of the request being served, set by the auth middleware.

`Uploads` reads it so that every tus handler (and GET /files/{id}) answers 404 for another
owner's upload without each handler passing it along. None means "no owner check": the
server's own work (the expiry sweep, forwarding) sees every upload.
"""

from __future__ import annotations

from contextvars import ContextVar

from aiohttp import web

current_owner: ContextVar[str | None] = ContextVar("upwell_owner", default=None)

#: The same owner on the request, for the access log (which runs outside the auth middleware).
OWNER = web.RequestKey("owner", str)
