"""A TCP proxy on loopback that behaves like a long-distance link: delay and bandwidth.

    .venv/bin/python benchmarks/wan_proxy.py --upstream 127.0.0.1:8080 --rtt-ms 40 \\
        --link-rate 100MB --conn-rate 25MB            # prints "listening on 127.0.0.1:PORT"

Each direction of each connection is a delay line: bytes read from one side are released to the
other side `rtt / 2` after they passed the rate limits. Two token buckets meter every byte
before it enters the line: one per link direction, shared by all connections (the path's
capacity), and one per connection (what one TCP flow over a long path gets). A line holds at
most about a bandwidth-delay product of bytes (plus one read); beyond that the proxy stops
reading, so the sender feels back-pressure through its socket. Nothing is ever buffered whole.

Rates are bytes per second (`100MB` = 10^8, `25MiB` = 25 * 2^20); 0 means unlimited.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

READ_SIZE = 64 * 1024  # one read: small enough to meter smoothly, big enough to keep up
MIN_LINE_BYTES = 256 * 1024  # the least a delay line holds before it pushes back


class TokenBucket:
    """`rate` bytes per second with a burst of `burst` bytes, shared by whoever calls `take`.

    A reservation is made at once, in call order (GCRA: the theoretical arrival time moves on
    by n / rate), and the caller then waits until its bytes conform. So over any interval, the
    bytes released never exceed rate * elapsed + burst, however many tasks share the bucket.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tat = 0.0  # when the bucket would be empty again with nothing more taken

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._tat = max(self._tat, now) + n / self.rate
        wait = self._tat - now - self.burst / self.rate
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class Direction:
    """Counters of one direction of the link (all connections)."""

    bucket: TokenBucket
    delivered: int = 0  # bytes written to the receiving side
    #: (time, cumulative bytes delivered) after each write, when `record` is on (for tests).
    samples: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class WanProxy:
    upstream_host: str
    upstream_port: int
    rtt: float = 0.0  # seconds, both ways together
    link_rate: float = 0.0  # bytes/s per direction, shared by all connections; 0 = unlimited
    conn_rate: float = 0.0  # bytes/s per direction per connection; 0 = unlimited
    burst: int = 64 * 1024
    record: bool = False
    #: Called with every block read from clients, before it is metered (tests watch requests).
    on_up: Callable[[bytes], None] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    up: Direction = field(init=False)
    down: Direction = field(init=False)
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.up = Direction(TokenBucket(self.link_rate, self.burst))
        self.down = Direction(TokenBucket(self.link_rate, self.burst))

    @property
    def line_bytes(self) -> int:
        """How many bytes one delay line holds before the proxy stops reading."""
        rate = min(r for r in (self.link_rate, self.conn_rate, float("inf")) if r > 0)
        bdp = 0 if rate == float("inf") else int(rate * self.rtt / 2)
        return max(MIN_LINE_BYTES, bdp)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def url(self, path: str = "/files/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                writer.close()
                return
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer, self.up),
                    self._pump(up_reader, writer, self.down),
                )
            finally:
                for w in (writer, up_writer):
                    w.close()  # both, before waiting on either: a cancel must not leak one
                for w in (writer, up_writer):
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await w.wait_closed()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends the connections; the server's callback must not see a cancel
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, d: Direction
    ) -> None:
        """One direction of one connection: meter, delay, deliver; EOF passes through."""
        conn = TokenBucket(self.conn_rate, self.burst)
        line: collections.deque[tuple[float, bytes]] = collections.deque()
        held = 0
        room = asyncio.Event()
        room.set()
        ready = asyncio.Event()
        one_way = self.rtt / 2
        limit = self.line_bytes

        async def feed() -> None:
            nonlocal held
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    line.append((0.0, b""))
                    ready.set()
                    return
                if d is self.up and self.on_up is not None:
                    self.on_up(data)
                await conn.take(len(data))
                await d.bucket.take(len(data))
                line.append((time.monotonic() + one_way, data))
                held += len(data)
                ready.set()
                if held >= limit:
                    room.clear()
                    await room.wait()

        async def deliver() -> None:
            nonlocal held
            while True:
                while not line:
                    ready.clear()
                    await ready.wait()
                due, data = line.popleft()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                held -= len(data)
                d.delivered += len(data)
                if self.record:
                    d.samples.append((time.monotonic(), d.delivered))
                if held < limit:
                    room.set()

        feeder = asyncio.ensure_future(feed())
        try:
            await deliver()
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


@contextlib.asynccontextmanager
async def wan_proxy(upstream_url: str, **kwargs: object) -> AsyncIterator[WanProxy]:
    """A started WanProxy in front of `upstream_url`'s host and port."""
    from urllib.parse import urlsplit

    u = urlsplit(upstream_url)
    assert u.hostname and u.port
    proxy = WanProxy(u.hostname, u.port, **kwargs)  # type: ignore[arg-type]
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def parse_rate(text: str) -> float:
    """`100MB` (10^8 bytes/s), `25MiB`, `800k`, `0` (unlimited); a trailing `/s` is allowed."""
    t = text.strip().removesuffix("/s")
    units = {"": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
             "g": 1e9, "gb": 1e9, "gib": 2**30}  # fmt: skip
    num = t.rstrip("kKmMgGiIbB")
    unit = t[len(num) :].lower()
    if unit not in units:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}")
    try:
        return float(num) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}") from None


async def _serve(args: argparse.Namespace) -> None:
    host, _, port = args.upstream.rpartition(":")
    proxy = WanProxy(
        host or "127.0.0.1",
        int(port),
        rtt=args.rtt_ms / 1000,
        link_rate=args.link_rate,
        conn_rate=args.conn_rate,
        port=args.port,
    )
    await proxy.start()
    print(f"listening on {proxy.host}:{proxy.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: any free)")
    ap.add_argument("--rtt-ms", type=float, default=40.0, help="round trip added (default 40)")
    ap.add_argument("--link-rate", type=parse_rate, default=0.0, help="shared link, bytes/s")
    ap.add_argument("--conn-rate", type=parse_rate, default=0.0, help="per connection, bytes/s")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
