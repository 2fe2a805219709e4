"""Which files an MCP tool call may read: only regular files under the allowed roots.

A path is absolute or relative to the first root; it is resolved (symlinks, `..`) before it
is compared with the roots, so a symlink leading out is refused like any outside path. The
checks stat the file and never open it: a refusal happens before a byte is read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import format_size
from ..errors import SourceError


class PathRefused(SourceError):
    """A tool call named a file the server may not read (outside the roots, not a file)."""


@dataclass(frozen=True)
class AllowedFile:
    """A file a tool call may upload: its resolved path, as it was when checked."""

    path: Path
    size: int
    mtime_ns: int


def roots_from_uris(uris: Iterable[str]) -> list[Path]:
    """The local directories among MCP roots (`file://` URIs); other schemes are ignored."""
    found: list[Path] = []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
            found.append(Path(unquote(parts.path)))
    return found


def describe_roots(roots: Sequence[Path]) -> str:
    return ", ".join(str(r) for r in roots) if roots else "none"


def check_file(path: str, roots: Sequence[Path], max_size: int | None = None) -> AllowedFile:
    """The file `path` names, if it is a regular file under one of `roots` (blocking: run
    it in a thread). Raises PathRefused with the path and the allowed roots otherwise."""
    if not roots:
        raise PathRefused(
            f"{path}: no allowed roots are configured "
            "(upwell mcp --root DIR, upwell serve --mcp-root DIR)"
        )
    if not path or "\0" in path:
        raise PathRefused(f"{path!r}: not a usable path; give one under {describe_roots(roots)}")
    given = Path(path)
    candidate = given if given.is_absolute() else roots[0] / given
    real_roots = [Path(os.path.realpath(r)) for r in roots]
    try:
        real = Path(os.path.realpath(candidate, strict=True))
    except FileNotFoundError:
        raise PathRefused(
            f"{path}: no such file (allowed roots: {describe_roots(roots)})"
        ) from None
    except OSError as exc:
        raise PathRefused(f"{path}: {exc.strerror or exc}") from None
    if not any(real.is_relative_to(root) for root in real_roots):
        how = "leads" if real != Path(os.path.abspath(candidate)) else "is"
        raise PathRefused(
            f"{path}: {how} outside the allowed roots ({describe_roots(roots)}); "
            "give a file under one of them"
        )
    try:
        st = os.stat(real)
    except OSError as exc:
        raise PathRefused(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(f"{path}: not a regular file (a directory, device or pipe)")
    if max_size is not None and st.st_size > max_size:
        raise PathRefused(
            f"{path}: {format_size(st.st_size)} is larger than this server's limit of "
            f"{format_size(max_size)}"
        )
    return AllowedFile(real, st.st_size, st.st_mtime_ns)
