"""Run the server: embedded (`running_server`, for tests and programs) or for the CLI
(`serve_forever`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from .app import create_app
from .settings import ServerSettings

log = logging.getLogger("upwell.server")

SHUTDOWN_TIMEOUT = 10.0  # seconds running requests get to finish on shutdown


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def running_server(
    settings: ServerSettings, app: web.Application | None = None
) -> AsyncIterator[str]:
    """Serve `app` (default: create_app(settings)) while the block runs; yields the tus URL.

    Port 0 picks a free port; the URL names the port actually bound.
    """
    runner = web.AppRunner(
        app if app is not None else create_app(settings),
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        port = settings.port
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                port = int(address[1])
                break
        yield f"http://{_url_host(settings.host)}:{port}{settings.base_path}"
    finally:
        await runner.cleanup()


async def serve_forever(settings: ServerSettings) -> None:
    """Serve until cancelled or sent SIGINT/SIGTERM, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with running_server(settings) as url:
            log.info("upwell serving tus uploads at %s (data in %s)", url, settings.data_dir)
            await stop.wait()
            log.info("upwell shutting down")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
