"""A TCP proxy on loopback that counts the bytes clients send and can cut connections, at
chosen points (`cut_at`) or at random from a seed (`Chaos`: drops mid-body, delays, 503s,
truncated responses, stalls).

Real sockets, no mocks: the client under test talks to the proxy, the proxy to a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 22\r\nConnection: close\r\n\r\ninjected by the proxy\n"
)


@dataclass
class Chaos:
    """Random faults, one per connection with probability `rate`, drawn from a seeded rng so
    a run replays: which fault, and where in the connection it strikes."""

    seed: int
    rate: float = 0.3
    max_stall: float = 2.0
    kinds: tuple[str, ...] = ("drop", "delay", "error", "truncate", "stall")
    applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self) -> tuple[str, int, float]:
        """(fault, after how many client bytes of the connection, seconds) for a connection."""
        if self._rng.random() >= self.rate:
            return "none", 0, 0.0
        kind = self._rng.choice(self.kinds)
        return kind, self._rng.randrange(0, 1 << 20), self._rng.uniform(0.01, self.max_stall)

    def struck(self, kind: str) -> None:
        self.applied.append(kind)


_STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    #: Cut the connection once this many client->server bytes have passed (in total, across
    #: connections), once per entry; entries are consumed in order.
    cut_at: list[int] = field(default_factory=list)
    bytes_up: int = 0
    cuts: int = 0
    #: Status codes of the responses that came back, in order (read from HTTP/1.1 status lines).
    statuses: list[int] = field(default_factory=list)
    chaos: Chaos | None = None
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
        fault, fault_at, seconds = self.chaos.pick() if self.chaos else ("none", 0, 0.0)
        conn_up = 0
        if fault == "error":
            fault_at = 0  # answered at the first request, whatever it is

        async def pump_up() -> None:
            nonlocal conn_up, fault
            while not cut.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                if fault != "none" and conn_up + len(data) > fault_at:
                    if self.chaos is not None and fault != "truncate":
                        self.chaos.struck(fault)
                    if fault == "delay":
                        await asyncio.sleep(seconds)  # the injected latency itself, once
                        fault = "none"
                    elif fault in ("drop", "stall", "error"):
                        keep = max(0, fault_at - conn_up)
                        if keep and fault != "error":
                            up_writer.write(data[:keep])
                            self.bytes_up += keep
                            await up_writer.drain()
                        if fault == "stall":
                            await asyncio.sleep(seconds)  # a link that goes silent, then dies
                        elif fault == "error":
                            writer.write(_UNAVAILABLE)
                            with contextlib.suppress(OSError):
                                await writer.drain()
                        self.cuts += 1
                        cut.set()
                        break
                conn_up += len(data)
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
                self.statuses.extend(int(code) for code in _STATUS_LINE.findall(data))
                if fault == "truncate" and conn_up > fault_at:
                    if self.chaos is not None:
                        self.chaos.struck(fault)
                    writer.write(data[: len(data) // 2])  # half an answer, then nothing
                    self.cuts += 1
                    cut.set()
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
    upstream_url: str, cut_at: list[int] | None = None, chaos: Chaos | None = None
) -> AsyncIterator[FaultProxy]:
    from urllib.parse import urlsplit

    u = urlsplit(upstream_url)
    assert u.hostname and u.port
    proxy = FaultProxy(u.hostname, u.port, list(cut_at or []), chaos=chaos)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
