"""Command-line parameter types shared by every `upwell` command."""

from __future__ import annotations

from typing import Any

import click

from ..config import parse_rate, parse_size
from ..errors import ConfigError


class SizeType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A size such as 5MiB, 5M or 5242880."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value), what=param.name if param and param.name else "size")
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


class RateType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A rate such as 10MiB/s, 10M or 1048576 (bytes per second)."""

    name = "RATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_rate(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


RATE = RateType()


class AutoOr(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """`auto` (None: upwell decides from what it measures) or a value of `inner`."""

    def __init__(self, inner: click.ParamType) -> None:  # type: ignore[type-arg]
        self.inner = inner
        self.name = f"auto|{inner.name}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        return self.inner.convert(value, param, ctx)
