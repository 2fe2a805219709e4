"""`upwell emulate gemini` and `upwell files list|get|content|rm`: click commands for
`upwell.cli`.

Keys come from the target's variable ($GEMINI_API_KEY, $OPENAI_API_KEY, ...), never from an
argument, where `ps` and shell history would show them. Errors are one line; exit codes as for
`upwell`: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .cli_emulate import accepted_key, fault_options, listen_options, serve_emulator
from .cli_run import run_command
from .cli_types import SIZE
from .config import format_size
from .errors import ConfigError, UpwellError

if TYPE_CHECKING:
    from .targets.base import FileService, RemoteFile

T = TypeVar("T")


# -- upwell emulate gemini ------------------------------------------------------------------
# The defaults are the real service's, read when the command runs: `upwell upload` and
# `upwell --help` need not import the Google protocol module.
def _default_granularity() -> str:
    from .protocols.google_resumable import DEFAULT_GRANULARITY

    return str(DEFAULT_GRANULARITY)


def _default_max_size() -> str:
    from .protocols.google_resumable import MAX_FILE_SIZE

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
    from .emulators.gemini import FaultPlan, create_gemini_app

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


# -- upwell files ---------------------------------------------------------------------------
_to = click.option(
    "--to",
    "--provider",
    "to",
    default="gemini",
    show_default=True,
    metavar="TARGET",
    help="Where the files are: gemini, openai, kimi or glm (keys from the environment).",
)
_json = click.option("--json", "as_json", is_flag=True, help="Write JSON to stdout.")


def _run(to: str, work: Callable[[FileService, Any], Awaitable[T]]) -> T:
    """Run `work(target, http)` against the file service named by `to` and the environment."""
    from .targets.base import FileService
    from .targets.http import new_session
    from .targets.resolve import resolve_target

    try:
        target = resolve_target(to)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if not isinstance(target, FileService):
        raise click.UsageError(
            f"--to {to!r}: that target keeps no files to manage; use gemini, openai, kimi or glm"
        )

    async def main() -> T:
        async with new_session(connections=4, connect_timeout=30, read_timeout=120) as http:
            return await work(target, http)

    try:
        return run_command(main())
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _line(f: RemoteFile) -> str:
    x = f.extra
    state = str(x.get("state") or x.get("status") or "-")
    label = str(x.get("display_name") or x.get("filename") or "-")
    return "  ".join([f.name, format_size(f.size).rjust(10), state.ljust(10), label, f.uri])


@click.group()
def files() -> None:
    """List, show, read and delete files at a provider's files API (gemini, openai, kimi, glm)."""


@files.command("list")
@_to
@_json
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(1, 100))
@click.option("--limit", default=None, type=click.IntRange(1), help="Stop after N files.")
def files_list(to: str, as_json: bool, page_size: int, limit: int | None) -> int:
    """List the files the key can see, newest first (NDJSON with --json)."""

    async def work(target: FileService, http: Any) -> int:
        count = 0
        async for f in target.list_files(http, page_size):
            click.echo(json.dumps(f.summary()) if as_json else _line(f))
            count += 1
            if limit is not None and count >= limit:
                break
        return 0

    return _run(to, work)


@files.command("get")
@_to
@_json
@click.argument("name")
def files_get(to: str, as_json: bool, name: str) -> int:
    """Show the file NAME (the provider's id, e.g. files/<id> or file-<id>, or its URI)."""

    async def work(target: FileService, http: Any) -> RemoteFile:
        return await target.get_file(http, name)

    summary = _run(to, work).summary()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            if value is not None:
                click.echo(f"{key}: {value}")
    return 0


@files.command("content")
@_to
@_json
@click.argument("name")
def files_content(to: str, as_json: bool, name: str) -> int:
    """Print the text the provider extracted from file NAME (kimi, glm; openai for some)."""

    async def work(target: FileService, http: Any) -> str:
        return await target.file_content(http, name)

    text = _run(to, work)
    if as_json:
        click.echo(json.dumps({"name": name, "content": text}))
    else:
        click.echo(text, nl=not text.endswith("\n"))
    return 0


@files.command("rm")
@_to
@_json
@click.argument("names", nargs=-1, required=True)
def files_rm(to: str, as_json: bool, names: tuple[str, ...]) -> int:
    """Delete the files NAMES; goes on past failures, exit 1 if any failed."""

    async def work(target: FileService, http: Any) -> int:
        failed = 0
        for name in names:
            try:
                await target.delete_file(http, name)
            except UpwellError as exc:
                failed += 1
                click.echo(f"upwell: error: {exc}", err=True)
                if as_json:
                    click.echo(json.dumps({"name": name, "deleted": False, "error": str(exc)}))
                continue
            click.echo(
                json.dumps({"name": name, "deleted": True}) if as_json else f"deleted {name}"
            )
        return 1 if failed else 0

    return _run(to, work)
