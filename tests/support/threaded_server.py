"""`upwell serve` (the real app on a real loopback socket) in a thread with its own event loop,
for synchronous tests such as hypothesis state machines; its wall clock moves when told."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from upwell.server.app import create_app
from upwell.server.clock import Clock
from upwell.server.runner import running_server
from upwell.server.settings import ServerSettings


class MovableClock:
    """Real time plus an offset the test adds to (expiry without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class ThreadedServer:
    url: str  # the tus endpoint
    host: str
    port: int
    clock: MovableClock


@contextlib.contextmanager
def threaded_server(
    settings: ServerSettings, start_timeout: float = 20.0
) -> Iterator[ThreadedServer]:
    clock = MovableClock()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="upwell-test-server", daemon=True)
    thread.start()
    app = create_app(settings, clock=Clock(now=clock.now))
    server: Any = running_server(settings, app)
    try:
        url = asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(start_timeout)
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        try:
            yield ThreadedServer(url, parts.hostname, parts.port, clock)
        finally:
            stop = server.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(stop, loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
