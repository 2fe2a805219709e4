"""The `upwell` command: a thin shell over the library, which never prints.

`main(argv) -> int` is what tests call; `entrypoint()` only exits with its code.
Exit codes: 0 success, 1 an upload failed, 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import DEFAULT_TARGET, Settings
from ..errors import ConfigError, SessionError, UpwellError
from .emulate import emulate
from .files import files
from .mcp import mcp, require_mcp_extra
from .params import RATE, SIZE, AutoOr
from .run import hold_gc_for_startup, run_command
from .serve import forward_targets, gateway_options, gateway_settings

if TYPE_CHECKING:
    from ..progress import UploadProgress
    from ..results import UploadResult

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="upwell", prog_name="upwell")
@click.option("-v", "--verbose", count=True, help="Log retries and resumes to stderr (-vv: debug).")
def cli(verbose: int) -> None:
    """Move large files to tus servers and AI providers' file APIs: chunked, parallel,
    resumable, verified."""
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="upwell: %(message)s",
            stream=sys.stderr,
        )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    default="./upwell-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the upload state (SQLite) and bytes are kept.",
)
@click.option("--max-size", type=SIZE, default=None, help="Largest upload accepted (e.g. 10GiB).")
@click.option("--mcp", "mcp_on", is_flag=True, help="Serve the MCP tools at /mcp.")
@click.option(
    "--mcp-root",
    "mcp_roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory /mcp may upload files from (repeatable; implies --mcp).",
)
@click.option(
    "--state",
    envvar="UPWELL_STATE",
    default="sqlite",
    show_default=True,
    metavar="sqlite|URL",
    help="Upload records: SQLite under --data-dir, or a postgresql:// URL shared by replicas"
    " ($UPWELL_STATE; put the password in $PGPASSWORD).",
)
@click.option(
    "--storage",
    envvar="UPWELL_STORAGE",
    default=None,
    metavar="s3://BUCKET/PREFIX",
    help="Upload bytes: files under --data-dir (default), or S3 ($UPWELL_STORAGE;"
    " AWS_ENDPOINT_URL and the AWS credential chain).",
)
@gateway_options
def serve(
    host: str,
    port: int,
    data_dir: Path,
    max_size: int | None,
    mcp_on: bool,
    mcp_roots: tuple[Path, ...],
    state: str,
    storage: str | None,
    **gateway: Any,
) -> int:
    """Run the upload server: tus, POST /upload, the catalog, events, forwarding, metrics.

    Embedded by default (SQLite and files under --data-dir); with --state postgresql://… and a
    shared --data-dir or --storage s3://…, any number of replicas serve the same uploads."""
    from ..server.runner import serve_forever
    from ..server.settings import ServerSettings

    logging.basicConfig(level=logging.INFO, format="upwell serve: %(message)s", stream=sys.stderr)
    if mcp_on or mcp_roots:
        require_mcp_extra()
    try:
        settings = ServerSettings(
            host=host,
            port=port,
            data_dir=data_dir,
            max_size=max_size,
            mcp_roots=tuple(r.resolve() for r in mcp_roots) if mcp_on or mcp_roots else None,
            state=state,
            storage=storage or None,
            **gateway_settings(gateway),
        )
        forwards = forward_targets(gateway)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        run_command(serve_forever(settings, forwards))
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return 0


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--to",
    "target",
    default=None,
    metavar="URL",
    help="tus endpoint URL, gemini, openai, kimi, glm, s3://bucket/key or "
    "supabase://bucket/path "
    f"(default: $UPWELL_TARGET, then {DEFAULT_TARGET}).",
)
@click.option(
    "--chunk-size",
    type=AutoOr(SIZE),
    default=None,
    help="Bytes per request, or auto (default: by file size, grown to fill the link).",
)
@click.option(
    "--parallel",
    type=AutoOr(click.IntRange(1, 64)),
    default=None,
    help="Streams per file (1-64), or auto (default: as many as raise the rate, up to 8).",
)
@click.option(
    "--max-files", type=click.IntRange(1, 256), default=None, help="Files uploading at once."
)
@click.option(
    "--limit-rate", type=RATE, default=None, help="Bandwidth limit for all files, e.g. 10MiB/s."
)
@click.option("--session-id", default=None, help="Resume (or name) this session; one file only.")
@click.option("--no-resume", is_flag=True, help="Start over even if an earlier run was cut off.")
@click.option("--json", "as_json", is_flag=True, help="Write NDJSON progress to stdout.")
@click.option(
    "--purpose", default=None, help="openai/kimi/glm: the file's purpose (default per provider)."
)
@click.option(
    "--multipart", is_flag=True, help="openai: use the Uploads API (parts) whatever the size."
)
@click.option("--upsert", is_flag=True, help="Replace an existing object (supabase:// targets).")
def upload(
    paths: tuple[Path, ...],
    target: str | None,
    chunk_size: int | None,
    parallel: int | None,
    max_files: int | None,
    limit_rate: int | None,
    session_id: str | None,
    no_resume: bool,
    as_json: bool,
    purpose: str | None = None,
    multipart: bool = False,
    upsert: bool = False,
) -> int:
    """Upload PATHS (several files go at once); a cut-off run resumes when run again."""
    from ..memory import return_large_buffers_to_os
    from ..sessions.store import check_session_id
    from ..uploaders import ResumableUploader

    return_large_buffers_to_os()
    for path in paths:
        if not path.exists():
            raise click.UsageError(f"{path}: no such file")
        if not path.is_file():
            raise click.UsageError(f"{path}: not a regular file")
    if session_id is not None and len(paths) > 1:
        raise click.UsageError("--session-id names one upload: give one file")
    try:
        settings = Settings.from_env(
            target=target, chunk_size=chunk_size, max_parallel=parallel, bandwidth_limit=limit_rate
        )
        if session_id is not None:
            check_session_id(session_id)
        resolved = None
        if purpose is not None or multipart or upsert:
            from ..targets.resolve import resolve_target

            resolved = resolve_target(
                settings.target, purpose=purpose, multipart=multipart or None, upsert=upsert
            )
        uploader = ResumableUploader(
            settings=settings, target=resolved, max_files=max_files, resume=not no_resume
        )
    except (ConfigError, SessionError) as exc:
        raise click.UsageError(str(exc)) from None
    results = run_command(_run_uploads(uploader, list(paths), as_json, session_id))
    failed = [r for r in results if not r.success]
    for r in failed:
        click.echo(f"upwell: upload failed: {r.file_path}: {r.error}", err=True)
    if not as_json:
        for r in results:
            if r.success:
                uri = r.file_uri or ""
                named = r.file_name and uri.rsplit("/", 1)[-1] != r.file_name
                click.echo(f"{r.file_path} -> {uri}" + (f" ({r.file_name})" if named else ""))
    return EXIT_FAILED if failed else 0


async def _run_uploads(
    uploader: Any, paths: list[Path], as_json: bool, session_id: str | None
) -> list[UploadResult]:
    async def run_all() -> list[UploadResult]:
        async with uploader:
            if session_id is not None:
                return [await uploader.upload_file_resumable(paths[0], session_id=session_id)]
            return list(await uploader.upload_files(paths))

    if as_json:
        from ..progress import to_ndjson

        out = sys.stdout

        def write_line(p: UploadProgress) -> None:
            out.write(to_ndjson(p))
            out.flush()

        uploader.progress_tracker.add_listener(write_line)
        return await run_all()
    if not sys.stderr.isatty():
        return await run_all()
    from .bars import ProgressDisplay

    with ProgressDisplay(len(paths)) as display:
        uploader.progress_tracker.add_listener(display.update)
        return await run_all()


@cli.group()
@click.option(
    "--session-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where sessions are kept (default: $UPLOAD_SESSION_DIR, then the user's state dir).",
)
@click.pass_context
def sessions(ctx: click.Context, session_dir: Path | None) -> None:
    """List, inspect, remove and clean up upload sessions."""
    from ..sessions.manager import default_session_dir

    ctx.obj = session_dir or default_session_dir()


def _uploader_for(session_dir: Path, target: str | None) -> Any:
    from ..uploaders import ResumableUploader

    return ResumableUploader(session_dir=session_dir, target=target)


@sessions.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def sessions_list(session_dir: Path, as_json: bool) -> int:
    """Every session, with its status and progress."""
    from ..sessions.manager import SessionManager

    async def run() -> list[Any]:
        manager = SessionManager(session_dir)
        try:
            return await manager.list_sessions()
        finally:
            await manager.close()

    found = run_command(run())
    for sess in found:
        if as_json:
            click.echo(json.dumps(sess.summary()))
        else:
            click.echo(
                f"{sess.session_id}  {sess.status:8}  {sess.get_progress_percentage():5.1f}%  "
                f"{sess.file_path}  -> {sess.target}  "
                f"(expires {sess.expires_at:%Y-%m-%d %H:%M} UTC)"
            )
    if not found and not as_json:
        click.echo(f"no sessions in {session_dir}", err=True)
    return 0


@sessions.command("show")
@click.argument("session_id")
@click.pass_obj
def sessions_show(session_dir: Path, session_id: str) -> int:
    """One session as JSON."""
    from ..sessions.manager import SessionManager
    from ..sessions.store import check_session_id

    async def run() -> Any:
        manager = SessionManager(session_dir)
        try:
            return await manager.load_session(check_session_id(session_id))
        finally:
            await manager.close()

    try:
        sess = run_command(run())
    except SessionError as exc:
        raise click.UsageError(str(exc)) from None
    if sess is None:
        click.echo(f"upwell: no session {session_id!r} in {session_dir}", err=True)
        return EXIT_FAILED
    click.echo(json.dumps(sess.summary(), indent=2))
    return 0


@sessions.command("rm")
@click.argument("session_ids", nargs=-1, required=True)
@click.pass_obj
def sessions_rm(session_dir: Path, session_ids: tuple[str, ...]) -> int:
    """Remove sessions, ending their unfinished uploads at the target where possible."""
    from ..sessions.manager import SessionManager
    from ..sessions.store import check_session_id

    async def run() -> list[str]:
        manager = SessionManager(session_dir)
        missing = []
        try:
            for sid in session_ids:
                sess = await manager.load_session(check_session_id(sid))
                if sess is None:
                    missing.append(sid)
                    continue
                if sess.status != "complete":
                    with contextlib.suppress(UpwellError):
                        uploader = _uploader_for(session_dir, sess.target)
                        await uploader._end_remote(sess)
                await manager.delete_session(sid)
        finally:
            await manager.close()
        return missing

    try:
        missing = run_command(run())
    except SessionError as exc:
        raise click.UsageError(str(exc)) from None
    for sid in missing:
        click.echo(f"upwell: no session {sid!r} in {session_dir}", err=True)
    return EXIT_FAILED if missing else 0


@sessions.command("cleanup")
@click.pass_obj
def sessions_cleanup(session_dir: Path) -> int:
    """Remove expired sessions (and their unfinished uploads at the target)."""
    from ..sessions.manager import SessionManager

    async def end_remote(sess: Any) -> None:
        with contextlib.suppress(UpwellError):
            await _uploader_for(session_dir, sess.target)._end_remote(sess)

    async def run() -> int:
        manager = SessionManager(session_dir, remote_cleanup=end_remote)
        try:
            return await manager.cleanup_expired_sessions()
        finally:
            await manager.close()

    click.echo(f"removed {run_command(run())} expired session(s)")
    return 0


cli.add_command(emulate)
cli.add_command(files)
cli.add_command(mcp)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, prog_name="upwell", standalone_mode=False
        )
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "upwell"
        click.echo(f"{command}: error: {exc.format_message()} (see '{command} --help')", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("upwell: interrupted", err=True)
        return EXIT_INTERRUPTED
    except UpwellError as exc:
        click.echo(f"upwell: error: {exc}", err=True)
        return EXIT_FAILED
    return rv if isinstance(rv, int) else 0


def entrypoint() -> None:
    """The console script."""
    hold_gc_for_startup()
    sys.exit(main())
