"""Run an aiohttp app on a socket: embedded while a block runs, or until SIGINT/SIGTERM.

Shared by `upwell serve` and the emulators, so both bind, report and shut down the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def running_app(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float
) -> AsyncIterator[str]:
    """Serve `app` while the block runs; yields `http://host:port` (port 0: a free port,
    and the URL names the one bound). Running requests get `shutdown_timeout` to finish."""
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=shutdown_timeout, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                bound = int(address[1])
                break
        yield f"http://{url_host(host)}:{bound}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (handlers removed after)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
