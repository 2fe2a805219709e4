"""A TCP proxy on loopback that counts the bytes clients send and can cut connections.

Real sockets, no mocks: the client under test talks to the proxy, the proxy to a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    #: Cut the connection once this many client->server bytes have passed (in total, across
    #: connections), once per entry; entries are consumed in order.
    cut_at: list[int] = field(default_factory=list)
    bytes_up: int = 0
    cuts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def url(self, path: str = "/files/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(up_writer)
        cut = asyncio.Event()

        async def pump_up() -> None:
            while not cut.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                if self.cut_at and self.bytes_up + len(data) >= self.cut_at[0]:
                    keep = self.cut_at.pop(0) - self.bytes_up
                    if keep > 0:
                        up_writer.write(data[:keep])
                        self.bytes_up += keep
                        await up_writer.drain()
                    self.cuts += 1
                    cut.set()
                    break
                self.bytes_up += len(data)
                up_writer.write(data)
                await up_writer.drain()
            if not cut.is_set():
                with contextlib.suppress(OSError):
                    up_writer.write_eof()

        async def pump_down() -> None:
            while not cut.is_set():
                data = await up_reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()

        try:
            up = asyncio.ensure_future(pump_up())
            down = asyncio.ensure_future(pump_down())
            waiter = asyncio.ensure_future(cut.wait())
            await asyncio.wait({up, down, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if cut.is_set() or down.done():
                for t in (up, down):
                    t.cancel()
            else:
                await down
            waiter.cancel()
            await asyncio.gather(up, down, waiter, return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                if cut.is_set():
                    with contextlib.suppress(Exception):
                        w.transport.abort()
                else:
                    w.close()
            self._tasks.discard(task)  # type: ignore[arg-type]
            self._writers.discard(writer)
            self._writers.discard(up_writer)


@contextlib.asynccontextmanager
async def fault_proxy(
    upstream_url: str, cut_at: list[int] | None = None
) -> AsyncIterator[FaultProxy]:
    from urllib.parse import urlsplit

    u = urlsplit(upstream_url)
    assert u.hostname and u.port
    proxy = FaultProxy(u.hostname, u.port, list(cut_at or []))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
