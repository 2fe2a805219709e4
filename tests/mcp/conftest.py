"""Fixtures for the MCP tests: allowed roots, a host-like environment, the TS SDK's driver."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Loaded here, before any loop runs: the upwell_server fixture imports it on its loop.
import upwell.server.runner  # noqa: F401
from tests.support.services import unavailable

from .support import MCP_CLIENT_JS, NODE_DIR


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The directory `upwell mcp --root` allows."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def host_env(tmp_path: Path) -> dict[str, str]:
    """What an MCP host passes the server: almost nothing of its own environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
    }


@pytest.fixture
def ts_sdk() -> Path:
    """node and the MCP TypeScript SDK under tests/interop/node; skips outside CI."""
    if shutil.which("node") is None:
        unavailable("`node` is not on PATH; install Node.js >= 20.19")
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").is_file():
        unavailable(
            "npm package @modelcontextprotocol/sdk is not installed; "
            "run `npm ci --prefix tests/interop/node`"
        )
    return MCP_CLIENT_JS
