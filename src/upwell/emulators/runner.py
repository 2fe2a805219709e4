"""Run an emulator app: in this loop (`running_emulator`), in a background thread for
synchronous callers such as the official SDK (`emulator_in_thread`), or for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from aiohttp import web

from ..serving import running_app, stop_on_signals

SHUTDOWN_TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def running_emulator(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `app` while the block runs; yields its base URL (port 0: a free port)."""
    async with running_app(app, host, port, shutdown_timeout=SHUTDOWN_TIMEOUT) as base:
        yield base


@contextlib.contextmanager
def emulator_in_thread(
    make_app: Callable[[], web.Application], host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve the app `make_app()` builds from a background thread's event loop; yields its
    base URL. For synchronous code (the official SDK's client does blocking I/O)."""
    ready = threading.Event()
    url: list[str] = []
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with running_emulator(make_app(), host, port) as base:
                url.append(base)
                ready.set()
                await stop.wait()
        except BaseException as exc:  # reported to the caller's thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait()
    try:
        if failure:
            raise failure[0]
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()


async def serve_until_signalled(
    app: web.Application, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation); `on_ready(base_url)` once listening."""
    async with stop_on_signals() as stop, running_emulator(app, host, port) as url:
        on_ready(url)
        await stop.wait()
