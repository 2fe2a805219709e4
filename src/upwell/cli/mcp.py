"""`upwell mcp`: the MCP server over stdio. Stdout carries MCP messages only; logs go to
stderr."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import click

from .params import SIZE
from .run import run_command


def require_mcp_extra() -> None:
    """A usage error, not a traceback, when the optional `mcp` SDK is not installed."""
    if importlib.util.find_spec("mcp") is None:
        raise click.UsageError("the MCP server needs the mcp extra: pip install '.[mcp]'")


@click.command("mcp")
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory files may be uploaded from (repeatable; the first is the base of "
    "relative paths). The client's MCP roots are allowed too.",
)
@click.option("--no-client-roots", is_flag=True, help="Ignore the roots the MCP client offers.")
@click.option("--max-size", type=SIZE, default=None, help="Refuse files larger than this.")
def mcp(roots: tuple[Path, ...], no_client_roots: bool, max_size: int | None) -> int:
    """Serve upwell's upload tools to an MCP host over stdio."""
    require_mcp_extra()
    from ..mcp.server import McpConfig, create_server

    logging.basicConfig(level=logging.WARNING, format="upwell mcp: %(message)s", stream=sys.stderr)
    config = McpConfig(
        roots=tuple(r.resolve() for r in roots),
        client_roots=not no_client_roots,
        max_size=max_size,
    )
    run_command(create_server(config).run_stdio_async())
    return 0
