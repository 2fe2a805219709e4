"""An HTTP proxy on loopback in front of a real server (moto's S3): it records every request
(method, path, query, headers, the SHA-256 and length of the body) and answers chosen ones
with a fault instead of forwarding them. Real sockets; the server behind it is real too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_sha256: bytes
    body_size: int
    status: int


@dataclass
class Fault:
    """Answer requests matching `when` with `status` and `body`, `times` times."""

    when: Callable[[web.Request], bool]
    status: int
    body: str = ""
    times: int = 1


@dataclass
class HTTPFaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def part_puts(self) -> list[Seen]:
        """The UploadPart and PutObject requests that reached the server (not faulted)."""
        return [s for s in self.seen if s.method == "PUT" and s.status == 200]

    def fail(
        self, when: Callable[[web.Request], bool], status: int, code: str = "", times: int = 1
    ) -> None:
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>injected by the test</Message></Error>"
            if code
            else ""
        )
        self.faults.append(Fault(when, status, body, times))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        h = hashlib.sha256()
        size = 0
        body = bytearray()
        async for block in request.content.iter_chunked(1 << 20):
            h.update(block)
            size += len(block)
            body += block
        query = dict(request.query)
        for fault in self.faults:
            if fault.times > 0 and fault.when(request):
                fault.times -= 1
                self.seen.append(
                    Seen(request.method, request.path, query, dict(request.headers), h.digest(),
                         size, fault.status)
                )  # fmt: skip
                return web.Response(
                    status=fault.status, text=fault.body, content_type="application/xml"
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as s,
            s.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=io.BytesIO(bytes(body)),
                allow_redirects=False,
            ) as r,
        ):
            payload = await r.read()
            self.seen.append(
                Seen(request.method, request.path, query, dict(request.headers), h.digest(),
                     size, r.status)
            )  # fmt: skip
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_BY_HOP}
            if request.method != "HEAD":
                out.pop("Content-Length", None)
            return web.Response(status=r.status, body=payload, headers=out)


def is_part(number: int) -> Callable[[web.Request], bool]:
    """Matches the UploadPart request of part `number`."""
    return lambda r: r.method == "PUT" and r.query.get("partNumber") == str(number)


@contextlib.asynccontextmanager
async def http_fault_proxy(upstream: str) -> AsyncIterator[HTTPFaultProxy]:
    proxy = HTTPFaultProxy(upstream.rstrip("/"))
    app = web.Application(client_max_size=6 * 1024**3)
    app.router.add_route("*", "/{tail:.*}", proxy._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        await runner.cleanup()
