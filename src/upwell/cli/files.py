"""`upwell files list|get|content|rm`: the files a provider holds, for any target with a files
API (Gemini, OpenAI, Kimi, GLM).

Keys come from the target's variable ($GEMINI_API_KEY, $OPENAI_API_KEY, ...), never from an
argument, where `ps` and shell history would show them. Errors are one line; exit codes as for
`upwell`: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..config import format_size
from ..errors import ConfigError, UpwellError
from .run import run_command

if TYPE_CHECKING:
    from ..targets.base import FileService, RemoteFile

T = TypeVar("T")


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
    from ..targets.base import FileService
    from ..targets.http import new_session
    from ..targets.resolve import resolve_target

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
