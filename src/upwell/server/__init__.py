"""The upwell server: tus 1.0 uploads in, finished files out by GET.

`create_app(settings)` builds the aiohttp application; `running_server` embeds it (tests, other
programs) and `serve_forever` runs it for `upwell serve`.
"""

from __future__ import annotations

from .app import create_app
from .runner import running_server, serve_forever
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "running_server", "serve_forever"]
