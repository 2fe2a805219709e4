"""`upwell emulate openai`: the OpenAI-compatible files and Uploads API emulator (`upwell.cli`
adds it to the `emulate` group)."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_emulate import accepted_key, fault_options, listen_options, serve_emulator
from .cli_types import SIZE


@click.command("openai")
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
    from .emulators.openai import FaultPlan, create_openai_app

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
