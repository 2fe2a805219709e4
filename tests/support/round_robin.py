"""An HTTP reverse proxy on loopback that sends each request to the next of several upstreams.

What a load balancer in front of replicas does, per request rather than per connection, so a
client's keep-alive connection still spreads its PATCHes over every replica. Bodies stream
both ways; the client's Host header is passed on, so Location points back at the proxy.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import hdrs, web

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side.
_HOP = {
    hdrs.CONNECTION,
    hdrs.KEEP_ALIVE,
    hdrs.PROXY_AUTHENTICATE,
    hdrs.PROXY_AUTHORIZATION,
    hdrs.TE,
    hdrs.TRAILER,
    hdrs.TRANSFER_ENCODING,
    hdrs.UPGRADE,
}


class RoundRobinProxy:
    def __init__(self, upstreams: Sequence[str]) -> None:
        self.upstreams = list(upstreams)  # base URLs, http://host:port
        self.requests: Counter[str] = Counter()  # upstream -> requests sent to it
        self._next = itertools.cycle(self.upstreams)
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        upstream = next(self._next)
        self.requests[upstream] += 1
        headers = {k: v for k, v in request.headers.items() if k not in _HOP}
        body = request.content if request.body_exists else None
        async with self._session.request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
            auto_decompress=False,
        ) as answer:
            response = web.StreamResponse(
                status=answer.status,
                headers={k: v for k, v in answer.headers.items() if k not in _HOP},
            )
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on a free loopback port; yields the proxy's base URL."""
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()
            await self._session.close()
