"""upwell as an MCP server: `upwell mcp` (stdio) and `/mcp` on `upwell serve` (HTTP)."""

from __future__ import annotations

from .server import McpConfig, create_server

__all__ = ["McpConfig", "create_server"]
