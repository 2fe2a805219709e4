"""The WAN proxy delays and limits as configured: bounds on real sockets, never timings.

A sink server on loopback counts what arrives; the proxy sits between it and the test's client.
Lower bounds on delay and upper bounds on throughput cannot fail because the machine is slow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from benchmarks.wan_proxy import READ_SIZE, TokenBucket, WanProxy, parse_rate


class Sink:
    """A TCP server that reads everything and echoes one byte for each b"?" it sees."""

    def __init__(self) -> None:
        self.received = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.received += len(data)
            if data.endswith(b"?"):
                writer.write(b"!")
                await writer.drain()
        writer.close()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    s.port = s.server.sockets[0].getsockname()[1]
    yield s
    s.server.close()
    await s.server.wait_closed()


async def started(sink: Sink, **kw: object) -> WanProxy:
    proxy = WanProxy("127.0.0.1", sink.port, record=True, **kw)  # type: ignore[arg-type]
    await proxy.start()
    return proxy


async def send(port: int, size: int) -> tuple[float, float]:
    """Send `size` bytes then a b"?" and wait for the answer; (start, end) monotonic times."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    block = b"x" * 65536
    left = size
    while left:
        n = min(left, len(block))
        writer.write(block[:n])
        await writer.drain()
        left -= n
    writer.write(b"?")
    await writer.drain()
    assert await reader.readexactly(1) == b"!"
    t1 = time.monotonic()
    writer.close()
    await writer.wait_closed()
    return t0, t1


async def test_round_trip_is_at_least_the_configured_delay(sink: Sink) -> None:
    proxy = await started(sink, rtt=0.1)
    try:
        for _ in range(3):
            t0, t1 = await send(proxy.port, 10)
            assert t1 - t0 >= 0.1
        assert sink.received == 3 * 11
    finally:
        await proxy.stop()


async def test_one_connection_never_beats_its_rate(sink: Sink) -> None:
    rate, burst = 4e6, 64 * 1024
    proxy = await started(sink, conn_rate=rate, burst=burst)
    size = 2 * 1024 * 1024
    try:
        t0, _ = await send(proxy.port, size)
    finally:
        await proxy.stop()
    assert sink.received == size + 1
    assert proxy.up.samples[-1][1] == size + 1
    for t, delivered in proxy.up.samples:
        assert delivered <= rate * (t - t0) + burst + READ_SIZE


async def test_the_link_limit_is_shared_by_all_connections(sink: Sink) -> None:
    link, conn, burst = 6e6, 5e6, 64 * 1024
    proxy = await started(sink, link_rate=link, conn_rate=conn, burst=burst, rtt=0.02)
    size = 1024 * 1024
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(send(proxy.port, size) for _ in range(4)))
    finally:
        await proxy.stop()
    assert sink.received == 4 * (size + 1)
    assert proxy.connections == 4
    for t, delivered in proxy.up.samples:
        # Four connections at 5 MB/s each would make 20 MB/s; the link lets 6 through.
        assert delivered <= link * (t - t0) + burst + 4 * READ_SIZE


async def test_a_slow_receiver_pushes_back_instead_of_buffering(sink: Sink) -> None:
    """With the upstream not reading, the proxy holds at most one delay line of bytes."""
    stalled = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = WanProxy("127.0.0.1", port, rtt=0.01)
    await proxy.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        block = b"y" * 65536
        pushed = 0
        # Write until the client's own socket refuses more (drain stops returning).
        for _ in range(2000):
            writer.write(block)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                break
            pushed += len(block)
        else:
            pytest.fail("128 MiB went into a proxy whose upstream reads nothing")
        assert pushed < 64 * 1024 * 1024
        writer.transport.abort()
    finally:
        stalled.set()
        await proxy.stop()
        server.close()
        await server.wait_closed()


async def test_bucket_releases_no_more_than_rate_times_time_plus_burst() -> None:
    bucket = TokenBucket(rate=1e6, burst=10_000)
    t0 = time.monotonic()
    taken = 0
    for _ in range(20):
        await bucket.take(10_000)
        taken += 10_000
        assert taken <= 1e6 * (time.monotonic() - t0) + 10_000 + 10_000


def test_rates_parse_in_decimal_and_binary_units() -> None:
    assert parse_rate("100MB") == 1e8
    assert parse_rate("25MiB/s") == 25 * 2**20
    assert parse_rate("0") == 0
    with pytest.raises(Exception, match="not a rate"):
        parse_rate("fast")
