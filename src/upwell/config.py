"""Settings from arguments and the environment; size and rate parsing."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_TARGET = "http://127.0.0.1:8080/files/"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Parse `5MiB`, `5M`, `5MB` or `5242880` into bytes.

    `M` alone means MiB, as curl and most tools read it; `MB` means 10**6.
    """
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"{what} must not be negative, got {text}")
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"{what} {text!r} is not a size; use e.g. 5MiB, 5M or 5242880")
    number, unit = m.group(1), m.group(2).lower()
    if unit in ("k", "m", "g", "t"):
        unit += "ib"
    if unit not in _UNITS:
        raise ConfigError(f"{what} {text!r} has an unknown unit {m.group(2)!r}; use KiB, MiB, GiB")
    value = float(number) * _UNITS[unit]
    if value != int(value) and unit in ("", "b"):
        raise ConfigError(f"{what} {text!r} is not a whole number of bytes")
    return int(value)


def format_size(n: float) -> str:
    """A byte count for people: 512 B, 1.5 KiB, 10 MiB, 2.3 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_rate(text: str | int) -> int:
    """Parse a rate such as `10MiB/s`, `10M` or `1048576` into bytes per second."""
    if isinstance(text, str) and text.strip().lower().endswith("/s"):
        text = text.strip()[:-2]
    rate = parse_size(text, what="rate")
    if rate <= 0:
        raise ConfigError("rate must be positive")
    return rate


def _env_int(env: Mapping[str, str], name: str, parse: type[int] | None = None) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_size(raw, what=name)
    except ConfigError as exc:
        raise ConfigError(f"environment variable {name}: {exc}") from exc


@dataclass(frozen=True)
class Limits:
    """Bounds on concurrency and retries for one uploader.

    With `adaptive` (the default, `--parallel auto`), `max_parallel` is the ceiling and the
    streams of each file follow the measured rate; a number given pins it.
    """

    max_parallel: int = 8
    max_files: int = 5
    max_retries: int = 3
    adaptive: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything an uploader needs to know, built once from arguments and the environment."""

    target: str = DEFAULT_TARGET
    chunk_size: int | None = None  # None: "auto", chosen from the file size
    limits: Limits = field(default_factory=Limits)
    bandwidth_limit: int | None = None
    session_dir: Path | None = None
    request_timeout: float = 300.0
    connect_timeout: float = 30.0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        target: str | None = None,
        chunk_size: int | str | None = None,
        max_parallel: int | None = None,
        max_retries: int | None = None,
        bandwidth_limit: int | str | None = None,
        session_dir: Path | str | None = None,
    ) -> Settings:
        """Arguments win over the environment (seed names), which wins over defaults."""
        env = os.environ if env is None else env
        tgt = target or env.get("UPWELL_TARGET") or DEFAULT_TARGET
        cs = (
            parse_size(chunk_size, what="chunk size")
            if chunk_size is not None
            else _env_int(env, "UPLOAD_CHUNK_SIZE")
        )
        if cs is not None and cs <= 0:
            raise ConfigError("chunk size must be positive")
        par = max_parallel if max_parallel is not None else _env_int(env, "UPLOAD_MAX_PARALLEL")
        ret = max_retries if max_retries is not None else _env_int(env, "UPLOAD_MAX_RETRIES")
        if par is not None and par < 1:
            raise ConfigError("parallel must be at least 1")
        if ret is not None and ret < 0:
            raise ConfigError("max retries must not be negative")
        bw_raw: int | str | None = bandwidth_limit
        if bw_raw is None:
            bw_raw = env.get("UPLOAD_BANDWIDTH_LIMIT") or None
        bw = parse_rate(bw_raw) if bw_raw is not None else None
        sd_raw = session_dir if session_dir is not None else env.get("UPLOAD_SESSION_DIR")
        defaults = Limits()
        return cls(
            target=tgt,
            chunk_size=cs,
            limits=Limits(
                max_parallel=par if par is not None else defaults.max_parallel,
                max_files=defaults.max_files,
                max_retries=ret if ret is not None else defaults.max_retries,
                adaptive=par is None,
            ),
            bandwidth_limit=bw,
            session_dir=Path(sd_raw) if sd_raw else None,
        )
