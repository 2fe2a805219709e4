"""`upwell emulate openai`: the OpenAI-compatible files and Uploads API emulator (`upwell.cli`
adds it to the `emulate` group)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .cli_run import run_command
from .cli_types import SIZE


@click.command("openai")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8091, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    default="./openai-emulator-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where uploaded bytes and file records are kept.",
)
@click.option(
    "--api-key-env",
    metavar="VAR",
    default=None,
    help="Accept only the key in this environment variable (default: any key).",
)
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
@click.option(
    "--fail-every",
    default=0,
    type=click.IntRange(0),
    metavar="N",
    help="Answer every Nth body request (file or part) with --fail-status.",
)
@click.option("--fail-status", default=503, show_default=True, type=click.IntRange(400, 599))
@click.option(
    "--drop-after",
    default=None,
    type=SIZE,
    metavar="BYTES",
    help="Cut the connection of some body requests after this many file bytes.",
)
@click.option(
    "--drop-every",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    metavar="N",
    help="With --drop-after: which body requests are cut (every Nth).",
)
@click.option(
    "--delay",
    default=0.0,
    type=click.FloatRange(0, 60),
    metavar="SECONDS",
    help="Wait this long before every answer (a slow service).",
)
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
    from .emulators.openai import FaultPlan, create_openai_app
    from .emulators.runner import serve_until_signalled

    api_key: str | None = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            raise click.UsageError(f"--api-key-env {api_key_env}: that variable is not set")
    faults = FaultPlan(
        fail_every=fail_every,
        fail_status=fail_status,
        drop_after=drop_after,
        drop_every=drop_every if drop_after is not None else 0,
        delay=delay,
    )
    app = create_openai_app(
        data_dir,
        api_key=api_key,
        faults=faults,
        max_file_size=max_file_size,
        max_part_size=max_part_size,
        upload_lifetime=upload_lifetime,
    )

    def ready(url: str) -> None:
        click.echo(f"OpenAI-compatible files API emulator at {url} (set OPENAI_BASE_URL={url}/v1)")
        sys.stdout.flush()

    try:
        run_command(serve_until_signalled(app, host, port, ready))
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return 0
