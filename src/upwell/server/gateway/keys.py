"""Typed keys for what the gateway's handlers find on the application."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..metrics import Metrics
from .service import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
# Open SSE streams, ended when the server shuts down (they would otherwise hold it up).
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams")
