"""Typed keys for what handlers find on the application."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .settings import ServerSettings
from .uploads import Uploads

SETTINGS = web.AppKey("settings", ServerSettings)
UPLOADS = web.AppKey("uploads", Uploads)
# Writes in progress, run to completion even when aiohttp cancels their handler.
WRITES: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("writes")
