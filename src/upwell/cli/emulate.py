"""`upwell emulate gemini|openai`: local emulators of providers' file APIs, and what every such
command shares: where it listens, the key it accepts, the faults it injects on purpose, and how
it runs until a signal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .params import SIZE
from .run import run_command

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
    from ..emulators.runner import serve_until_signalled

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


# -- upwell emulate gemini ------------------------------------------------------------------
# The defaults are the real service's, read when the command runs: `upwell upload` and
# `upwell --help` need not import the Google protocol module.
def _default_granularity() -> str:
    from ..protocols.google_resumable import DEFAULT_GRANULARITY

    return str(DEFAULT_GRANULARITY)


def _default_max_size() -> str:
    from ..protocols.google_resumable import MAX_FILE_SIZE

    return str(MAX_FILE_SIZE)


@click.group()
def emulate() -> None:
    """Run a local emulator of a provider's file API (tests, offline work)."""


@emulate.command("gemini")
@listen_options(port=8090, data_dir="./gemini-emulator-data")
@click.option(
    "--granularity",
    default=_default_granularity,
    type=SIZE,
    metavar="SIZE",
    help="Chunk granularity the emulator demands (real service: 8MiB).",
)
@click.option(
    "--max-size",
    default=_default_max_size,
    type=SIZE,
    metavar="SIZE",
    help="Largest file accepted (real service: 2GiB).",
)
@click.option(
    "--processing-polls",
    default=1,
    show_default=True,
    type=click.IntRange(0),
    help="GETs a new file stays PROCESSING before it is ACTIVE.",
)
@fault_options("chunk requests")
@click.option(
    "--stall-every",
    default=0,
    type=click.IntRange(0),
    metavar="N",
    help="Every Nth chunk request hangs unanswered for --stall-seconds.",
)
@click.option("--stall-seconds", default=30.0, show_default=True, type=click.FloatRange(0))
@click.option("--fail-processing", is_flag=True, help="Finished files end FAILED.")
def emulate_gemini(
    host: str,
    port: int,
    data_dir: Path,
    api_key_env: str | None,
    granularity: int,
    max_size: int,
    processing_polls: int,
    fail_every: int,
    fail_status: int,
    drop_after: int | None,
    drop_every: int,
    delay: float,
    stall_every: int,
    stall_seconds: float,
    fail_processing: bool,
) -> int:
    """Emulate the Gemini Files API (resumable uploads, files get/list/delete) on HOST:PORT.

    Point upwell or the official SDK at it with GEMINI_BASE_URL / GOOGLE_GEMINI_BASE_URL.
    """
    from ..emulators.gemini import FaultPlan, create_gemini_app

    api_key = accepted_key(api_key_env)
    if granularity < 1:
        raise click.UsageError("--granularity must be positive")
    faults = FaultPlan(
        fail_every=fail_every,
        fail_status=fail_status,
        drop_after=drop_after,
        drop_every=drop_every if drop_after is not None else 0,
        stall_every=stall_every,
        stall_seconds=stall_seconds,
        delay=delay,
        fail_processing=fail_processing,
    )
    app = create_gemini_app(
        data_dir,
        api_key=api_key,
        faults=faults,
        granularity=granularity,
        processing_polls=processing_polls,
        max_size=max_size,
    )
    return serve_emulator(
        app,
        host,
        port,
        lambda url: f"Gemini Files API emulator at {url} (set GEMINI_BASE_URL={url})",
    )


@emulate.command("openai")
@listen_options(port=8091, data_dir="./openai-emulator-data")
@click.option(
    "--max-file-size",
    default="512MiB",
    show_default=True,
    type=SIZE,
    metavar="SIZE",
    help="Largest file one POST /files takes (OpenAI: 512MiB, Kimi: 100MiB, GLM: 50MiB).",
)
@click.option("--max-part-size", default="64MiB", show_default=True, type=SIZE, metavar="SIZE")
@click.option(
    "--upload-lifetime",
    default=3600,
    show_default=True,
    type=click.IntRange(0),
    metavar="SECONDS",
    help="How long an Upload takes parts before it expires.",
)
@fault_options("body requests (file or part)")
def emulate_openai(
    host: str,
    port: int,
    data_dir: Path,
    api_key_env: str | None,
    max_file_size: int,
    max_part_size: int,
    upload_lifetime: int,
    fail_every: int,
    fail_status: int,
    drop_after: int | None,
    drop_every: int,
    delay: float,
) -> int:
    """Emulate OpenAI-compatible files APIs and OpenAI's Uploads API on HOST:PORT.

    Serves /v1 (OpenAI, Kimi) and /api/paas/v4 (GLM): point upwell or the official SDK at it
    with OPENAI_BASE_URL=URL/v1, MOONSHOT_BASE_URL=URL/v1 or ZHIPUAI_BASE_URL=URL/api/paas/v4.
    """
    from ..emulators.openai import FaultPlan, create_openai_app

    faults = FaultPlan(
        fail_every=fail_every,
        fail_status=fail_status,
        drop_after=drop_after,
        drop_every=drop_every if drop_after is not None else 0,
        delay=delay,
    )
    app = create_openai_app(
        data_dir,
        api_key=accepted_key(api_key_env),
        faults=faults,
        max_file_size=max_file_size,
        max_part_size=max_part_size,
        upload_lifetime=upload_lifetime,
    )
    return serve_emulator(
        app,
        host,
        port,
        lambda url: f"OpenAI-compatible files API emulator at {url} (set OPENAI_BASE_URL={url}/v1)",
    )
