"""What every `upwell emulate PROVIDER` command shares: where it listens, the key it accepts,
the faults it injects on purpose, and how it runs until a signal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .cli_run import run_command
from .cli_types import SIZE

F = TypeVar("F", bound=Callable[..., Any])


def listen_options(port: int, data_dir: str) -> Callable[[F], F]:
    """--host, --port (default `port`), --data-dir (default `data_dir`) and --api-key-env."""

    def decorate(fn: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
                ),
                click.option(
                    "--port", default=port, show_default=True, type=click.IntRange(0, 65535)
                ),
                click.option(
                    "--data-dir",
                    default=data_dir,
                    show_default=True,
                    type=click.Path(file_okay=False, path_type=Path),
                    help="Where uploaded bytes and file records are kept.",
                ),
                click.option(
                    "--api-key-env",
                    metavar="VAR",
                    default=None,
                    help="Accept only the key in this environment variable (default: any key).",
                ),
            )
        ):
            fn = option(fn)
        return fn

    return decorate


def fault_options(requests: str) -> Callable[[F], F]:
    """--fail-every/--fail-status, --drop-after/--drop-every and --delay; `requests` names what
    they apply to in the help ("chunk requests")."""

    def decorate(fn: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--fail-every",
                    default=0,
                    type=click.IntRange(0),
                    metavar="N",
                    help=f"Answer every Nth of the {requests} with --fail-status.",
                ),
                click.option(
                    "--fail-status", default=503, show_default=True, type=click.IntRange(400, 599)
                ),
                click.option(
                    "--drop-after",
                    default=None,
                    type=SIZE,
                    metavar="BYTES",
                    help=f"Cut the connection of some {requests} after this many body bytes.",
                ),
                click.option(
                    "--drop-every",
                    default=2,
                    show_default=True,
                    type=click.IntRange(1),
                    metavar="N",
                    help=f"With --drop-after: which of the {requests} are cut (every Nth).",
                ),
                click.option(
                    "--delay",
                    default=0.0,
                    type=click.FloatRange(0, 60),
                    metavar="SECONDS",
                    help="Wait this long before every answer (a slow service).",
                ),
            )
        ):
            fn = option(fn)
        return fn

    return decorate


def accepted_key(api_key_env: str | None) -> str | None:
    """The one key the emulator accepts (from $VAR), or None for any key."""
    if api_key_env is None:
        return None
    key = os.environ.get(api_key_env, "").strip()
    if not key:
        raise click.UsageError(f"--api-key-env {api_key_env}: that variable is not set")
    return key


def serve_emulator(app: Any, host: str, port: int, banner: Callable[[str], str]) -> int:
    """Run `app` on host:port until SIGINT/SIGTERM, printing `banner(url)` once it listens."""
    from .emulators.runner import serve_until_signalled

    def ready(url: str) -> None:
        click.echo(banner(url))
        sys.stdout.flush()

    try:
        run_command(serve_until_signalled(app, host, port, ready))
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return 0
