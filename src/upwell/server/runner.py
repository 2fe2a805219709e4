"""Run the server: embedded (`running_server`, for tests and programs) or for the CLI
(`serve_forever`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from ..serving import running_app, stop_on_signals
from .app import create_app
from .auth import warn_if_open
from .gateway.forwarding import ForwardTarget
from .settings import ServerSettings

log = logging.getLogger("upwell.server")

SHUTDOWN_TIMEOUT = 10.0  # seconds running requests get to finish on shutdown


@contextlib.asynccontextmanager
async def running_server(
    settings: ServerSettings, app: web.Application | None = None
) -> AsyncIterator[str]:
    """Serve `app` (default: create_app(settings)) while the block runs; yields the tus URL.

    Port 0 picks a free port; the URL names the port actually bound.
    """
    app = app if app is not None else create_app(settings)
    async with running_app(
        app, settings.host, settings.port, shutdown_timeout=SHUTDOWN_TIMEOUT
    ) as base:
        yield base + settings.base_path


async def serve_forever(settings: ServerSettings, forwards: Sequence[ForwardTarget] = ()) -> None:
    """Serve until cancelled or sent SIGINT/SIGTERM, then shut down cleanly."""
    warn_if_open(settings.host, settings.tokens)
    app = create_app(settings, forwards=forwards)
    async with stop_on_signals() as stop, running_server(settings, app) as url:
        log.info("upwell serving tus uploads at %s (data in %s)", url, settings.data_dir)
        if forwards:
            log.info("forwarding finished uploads to %s", ", ".join(f.name for f in forwards))
        await stop.wait()
        log.info("upwell shutting down")
