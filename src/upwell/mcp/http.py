"""The MCP server over streamable HTTP at `/mcp` on `upwell serve`.

The SDK's streamable HTTP transport is an ASGI application; this module runs it inside the
aiohttp app: each request's scope, body and response are handed across as they stream. Over
HTTP the client's MCP roots are never honoured (its paths are not this machine's): only the
server's `--mcp-root` directories may be read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..server.owners import OWNER
from ..server.settings import ServerSettings

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager


log = logging.getLogger("upwell.mcp")

MCP_PATH = "/mcp"
DISCONNECT_POLL = 1.0  # seconds between checks that a streaming client is still connected

Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
OWNER_SCOPE_KEY = "upwell.owner"  # the bearer token's owner, as the gateway's auth set it


def mount_mcp(app: web.Application, settings: ServerSettings) -> None:
    """`/mcp` on `upwell serve`, reading files only under `settings.mcp_roots`."""
    add_mcp_routes(app, tuple(settings.mcp_roots or ()), settings.host)


def add_mcp_routes(
    app: web.Application, roots: tuple[Path, ...], host: str, path: str = MCP_PATH
) -> None:
    """Serve upwell's MCP tools at `path` on `app`, for the app's lifetime. `host` is what the
    server listens on: on loopback, requests must name a loopback Host (DNS rebinding). The
    SDK is loaded, and the server built, in a thread as the app starts."""
    runner = _ManagerRunner(roots, host, path)
    app.on_startup.append(runner.start)
    # On shutdown, not cleanup: ending the sessions ends their open event streams, which
    # the server would otherwise wait for until its shutdown timeout.
    app.on_shutdown.append(runner.stop)
    app.router.add_route("*", path, asgi_handler(runner.handle_request))


def _build_manager(roots: tuple[Path, ...], host: str, path: str) -> StreamableHTTPSessionManager:
    from mcp.server.transport_security import TransportSecuritySettings

    from .server import McpConfig, create_server

    server = create_server(McpConfig(roots=roots, client_roots=False))
    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        if host in _LOOPBACK
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    # Building the (unused) Starlette app is how the SDK makes its session manager.
    server.streamable_http_app(streamable_http_path=path, transport_security=security, host=host)
    return server.session_manager


class _ManagerRunner:
    """Runs the session manager's anyio task group in a task of its own, because aiohttp may
    start and clean up an app from different tasks and a task group must stay in one."""

    def __init__(self, roots: tuple[Path, ...], host: str, path: str) -> None:
        self.roots, self.host, self.path = roots, host, path
        self.manager: StreamableHTTPSessionManager | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, app: web.Application) -> None:
        manager = await asyncio.to_thread(_build_manager, self.roots, self.host, self.path)
        ready = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(run(), name="upwell-mcp-sessions")
        started = asyncio.ensure_future(ready.wait())
        await asyncio.wait([started, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            started.cancel()
            await self._task  # raises why the manager did not start
        self.manager = manager

    async def stop(self, app: web.Application) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task])

    async def handle_request(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if self.manager is None:
            raise web.HTTPServiceUnavailable(text="the MCP server is starting or stopping")
        owner = scope.get(OWNER_SCOPE_KEY)
        if owner is not None:
            # The SDK binds a session to the principal that opened it: another token's
            # request for that session id is answered as if the session did not exist.
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
            from mcp.server.auth.provider import AccessToken

            scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=owner, scopes=[]))
        await self.manager.handle_request(scope, receive, send)


def asgi_handler(asgi: AsgiApp) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler running the ASGI app `asgi` for each request, streaming both ways."""

    async def handler(request: web.Request) -> web.StreamResponse:
        done = asyncio.Event()
        body_sent = False
        response: web.StreamResponse | None = None

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                chunk = await request.content.readany()
                if chunk and not request.content.at_eof():
                    return {"type": "http.request", "body": chunk, "more_body": True}
                body_sent = True
                return {"type": "http.request", "body": chunk, "more_body": False}
            # Nothing more will come: say "disconnect" when the client goes or we are done.
            while not done.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                try:
                    await asyncio.wait_for(done.wait(), DISCONNECT_POLL)
                except TimeoutError:
                    continue
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal response
            kind = message["type"]
            if kind == "http.response.start":
                response = web.StreamResponse(status=int(message["status"]))
                for name, value in message.get("headers", ()):
                    response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
                await response.prepare(request)
            elif kind == "http.response.body" and response is not None and not done.is_set():
                body = message.get("body", b"")
                try:
                    if body:
                        await response.write(body)
                    if not message.get("more_body", False):
                        await response.write_eof()
                except ConnectionResetError:
                    # The client went away (an event stream it closed): nothing to tell it,
                    # and receive() now says "disconnect".
                    done.set()

        try:
            await asgi(_scope(request), receive, send)
        finally:
            done.set()
        if response is None:
            raise web.HTTPInternalServerError(text="the MCP transport sent no response")
        return response

    return handler


def _scope(request: web.Request) -> Message:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
        OWNER_SCOPE_KEY: request.get(OWNER),
    }
