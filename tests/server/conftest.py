"""Fixtures for the server's tests: an app on a real loopback socket, a clock the test moves,
and a locker that tells the test when a request holds an upload and how many bytes it got."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.waits import within
from upwell.server.app import create_app
from upwell.server.clock import Clock
from upwell.server.locks import Lease, MemoryLocker
from upwell.server.settings import ServerSettings

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = {**TUS, "Content-Type": "application/offset+octet-stream"}


class FakeClock:
    """Wall and monotonic time that move only when the test says so."""

    def __init__(self) -> None:
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)
        self.mono = 1000.0
        self._wake = asyncio.Event()
        self.sleeping = asyncio.Event()

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        """The sweep's sleep: returns when the test calls `wake`."""
        self.sleeping.set()
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        self.sleeping.clear()
        self._wake.set()

    def clock(self) -> Clock:
        return Clock(now=self.now, monotonic=self.monotonic, sleep=self.sleep)


@dataclass
class _Watch:
    acquired: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0


class _WatchedLease:
    def __init__(self, lease: Lease, watch: _Watch) -> None:
        self._lease = lease
        self._watch = watch

    def touch(self, received: int) -> None:
        self._lease.touch(received)
        self._watch.received = received
        self._watch.changed.set()


class WatchedLocker(MemoryLocker):
    """The server's MemoryLocker, telling the test what requests holding it are doing."""

    def __init__(
        self, stale_after: float, monotonic: Callable[[], float], wait: float = 0.0
    ) -> None:
        super().__init__(stale_after, monotonic, wait)
        self._watches: dict[str, list[_Watch]] = defaultdict(list)

    def _watch(self, upload_id: str, index: int) -> _Watch:
        watches = self._watches[upload_id]
        while len(watches) <= index:
            watches.append(_Watch())
        return watches[index]

    @asynccontextmanager
    async def hold(
        self, upload_id: str, stop: Callable[[], None], *, preempt: bool = False
    ) -> AsyncIterator[Lease]:
        async with super().hold(upload_id, stop, preempt=preempt) as lease:
            index = sum(1 for w in self._watches[upload_id] if w.acquired.is_set())
            watch = self._watch(upload_id, index)
            watch.acquired.set()
            try:
                yield _WatchedLease(lease, watch)
            finally:
                watch.released.set()

    async def acquired(self, upload_id: str, nth: int = 0) -> None:
        what = f"request {nth} taking the lock of {upload_id}"
        await within(self._watch(upload_id, nth).acquired.wait(), what)

    async def released(self, upload_id: str, nth: int = 0) -> None:
        what = f"request {nth} releasing the lock of {upload_id}"
        await within(self._watch(upload_id, nth).released.wait(), what)

    async def received(self, upload_id: str, count: int, nth: int = 0) -> None:
        watch = self._watch(upload_id, nth)

        async def enough() -> None:
            while watch.received < count:
                watch.changed.clear()
                await watch.changed.wait()

        await within(enough(), f"request {nth} receiving {count} bytes of {upload_id}")


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def locker(fake_clock: FakeClock) -> WatchedLocker:
    return WatchedLocker(5.0, fake_clock.monotonic)


MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(
    aiohttp_client: Any, data_dir: Path, fake_clock: FakeClock, locker: WatchedLocker
) -> MakeClient:
    """A test client for create_app(ServerSettings(data_dir=..., **overrides))."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        settings = ServerSettings(data_dir=data_dir, port=0, **overrides)
        app = create_app(settings, clock=fake_clock.clock(), locker=locker)
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    return await make_client()


async def create_upload(client: TestClient[Any, Any], length: int | None, **headers: str) -> str:
    """POST a new upload; returns its path (/files/<id>)."""
    sent = {**TUS, **({"Upload-Length": str(length)} if length is not None else {}), **headers}
    resp = await client.post("/files/", headers=sent)
    assert resp.status == 201, await resp.text()
    location = resp.headers["Location"]
    return "/files/" + location.rsplit("/", 1)[1]


async def patch(
    client: TestClient[Any, Any], path: str, offset: int, data: Any, **headers: str
) -> Any:
    if isinstance(data, bytes) and len(data) > 1024 * 1024:
        data = io.BytesIO(data)  # aiohttp warns about sending large bytes objects
    return await client.patch(
        path, data=data, headers={**PATCH_HEADERS, "Upload-Offset": str(offset), **headers}
    )


async def raw_request(client: TestClient[Any, Any], head: str, body: bytes = b"") -> bytes:
    """Send bytes exactly as written (no client-side URL normalising); returns the answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        return await reader.read(65536)
    finally:
        writer.close()
        await writer.wait_closed()


def stored(data_dir: Path, path: str) -> bytes:
    """The bytes the server keeps for an upload, read straight from its file (or, for a
    concatenated upload, from the links to its parts, in order)."""
    upload = data_dir / "files" / path.rsplit("/", 1)[1]
    parts = upload.with_name(upload.name + ".parts")
    if parts.is_dir():
        return b"".join(p.read_bytes() for p in sorted(parts.iterdir()))
    return upload.read_bytes()
