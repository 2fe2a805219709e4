"""The gateway's options of `upwell serve`: forwards, tokens, proxy, CORS and limits.

Kept apart from the command group (cli/__init__.py) so the serve command itself stays a few
lines; secrets (tokens, API keys) come from files and the environment only, never from
arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .params import RATE, SIZE

F = TypeVar("F", bound=Callable[..., Any])


def gateway_options(command: F) -> F:
    """Add the gateway's options to a click command (applied bottom-up)."""
    options = [
        click.option(
            "--forward",
            "forward",
            multiple=True,
            metavar="TARGET",
            help="Send each finished upload on to TARGET (any --to value; repeatable).",
        ),
        click.option(
            "--tokens-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Bearer tokens, one 'token owner' per line (also $UPWELL_TOKENS).",
        ),
        click.option(
            "--trust-proxy",
            is_flag=True,
            help="Build upload URLs from Forwarded / X-Forwarded-Host / -Proto.",
        ),
        click.option(
            "--cors-origin",
            "cors_origin",
            multiple=True,
            metavar="ORIGIN",
            help="Browser origin allowed to call the server (repeatable; default any).",
        ),
        click.option(
            "--max-uploads-per-owner",
            type=click.IntRange(1),
            default=None,
            help="Upload bodies one owner may send at once (429 past it).",
        ),
        click.option(
            "--max-bytes-per-owner",
            type=SIZE,
            default=None,
            help="Bytes one owner may store (413 past it), e.g. 50GiB.",
        ),
        click.option(
            "--max-header-size",
            type=SIZE,
            default=None,
            help="Longest request header line accepted (default 8190 bytes; values 64KiB).",
        ),
        click.option(
            "--body-timeout",
            type=click.FloatRange(min=0.001),
            default=None,
            help="Seconds a request body may send nothing before it is cut off (default 60).",
        ),
        click.option(
            "--min-body-rate",
            type=RATE,
            default=None,
            help="Slowest body accepted, averaged over 30 s (default 1KiB/s; 0 turns it off).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def gateway_settings(options: dict[str, Any]) -> dict[str, Any]:
    """ServerSettings fields from the gateway's options (tokens read from file and env)."""
    from ..server.auth import load_tokens

    fields: dict[str, Any] = {
        "tokens": load_tokens(options["tokens_file"], os.environ),
        "trust_proxy": options["trust_proxy"],
        "max_uploads_per_owner": options["max_uploads_per_owner"],
        "max_bytes_per_owner": options["max_bytes_per_owner"],
    }
    if options["cors_origin"]:
        fields["cors_origins"] = tuple(options["cors_origin"])
    if options["max_header_size"] is not None:
        fields["max_line_size"] = fields["max_field_size"] = options["max_header_size"]
    if options["body_timeout"] is not None:
        fields["body_idle_seconds"] = options["body_timeout"]
    if options["min_body_rate"] is not None:
        fields["body_min_rate"] = options["min_body_rate"]
    return fields


def forward_targets(options: dict[str, Any]) -> list[Any]:
    """The --forward targets, resolved as --to is (a missing key is a ConfigError)."""
    from ..server.gateway.forwarding import ForwardTarget
    from ..targets.resolve import resolve_target

    names = list(dict.fromkeys(options["forward"]))
    return [ForwardTarget(name, resolve_target(name)) for name in names]
