"""IETF "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload), without I/O.

Each draft revision has an interop version, sent in `Upload-Draft-Interop-Version`; peers
agree on one. Supported here: 5 (draft -03, tus-js-client's 'ietf-draft-03'), 6 (draft -05,
tus-js-client's 'ietf-draft-05', URLSession) and 8 (the latest draft, -11). What differs:
interop 3 and earlier said `Upload-Incomplete: ?1` where later ones say `Upload-Complete: ?0`
(kept here for the table's sake, not offered); from 6, an append (PATCH) carries
`Content-Type: application/partial-upload`; 8 adds `Upload-Limit`.

Strict as a server (ProtocolError with the status to answer), forgiving as a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ProtocolError
from .http import parse_uint

INTEROP_HEADER = "Upload-Draft-Interop-Version"
SUPPORTED_VERSIONS = (5, 6, 8)
LATEST_VERSION = 8
PARTIAL_UPLOAD = "application/partial-upload"
# Sent before the final answer of a creation whose body is under way: the upload's URL, so
# a client whose connection breaks can resume (RFC 9110 §15.2 informational response).
RESUMPTION_SUPPORTED = 104
RESUMPTION_REASON = "Upload Resumption Supported"


def parse_version(value: str | None) -> int | None:
    """The interop version a request speaks; None when it speaks none (plain HTTP or tus)."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or int(value) not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise ProtocolError(
            f"{INTEROP_HEADER} {value[:10]!r} is not supported; this server speaks {supported}",
            400,
        )
    return int(value)


def _parse_bool(value: str, header: str) -> bool:
    """An RFC 8941 structured-field boolean: ?1 or ?0 (parameters are ignored)."""
    item = value.split(";", 1)[0].strip()
    if item == "?1":
        return True
    if item == "?0":
        return False
    raise ProtocolError(f"{header} must be ?1 or ?0, got {value.strip()[:20]!r}", 400)


def _complete_header(version: int) -> str:
    return "Upload-Incomplete" if version <= 3 else "Upload-Complete"


def parse_complete(headers: Mapping[str, str], version: int) -> bool:
    """Whether this request ends the upload (Upload-Complete, or not Upload-Incomplete)."""
    name = _complete_header(version)
    value = headers.get(name)
    if value is None:
        raise ProtocolError(f"missing {name} header", 400)
    flag = _parse_bool(value, name)
    return flag if version > 3 else not flag


def format_complete(version: int, complete: bool) -> dict[str, str]:
    flag = complete if version > 3 else not complete
    return {_complete_header(version): "?1" if flag else "?0"}


def check_append_content_type(content_type: str, version: int) -> None:
    """From interop 6 an append's body is `application/partial-upload`; 415 otherwise."""
    if version >= 6 and content_type != PARTIAL_UPLOAD:
        raise ProtocolError(f"Content-Type of an append must be {PARTIAL_UPLOAD}", 415)


def parse_offset(value: str | None) -> int:
    return parse_uint(value, "Upload-Offset")


def parse_length(value: str | None) -> int | None:
    return None if value is None else parse_uint(value, "Upload-Length")


@dataclass(frozen=True)
class Limit:
    """Upload-Limit (interop 8): what a server accepts."""

    max_size: int | None = None
    max_append_size: int | None = None
    expires: int | None = None  # seconds an unfinished upload is kept


def format_limit(limit: Limit) -> str | None:
    members = [
        f"{key}={value}"
        for key, value in (
            ("max-size", limit.max_size),
            ("max-append-size", limit.max_append_size),
            ("expires", limit.expires),
        )
        if value is not None
    ]
    return ", ".join(members) or None


def parse_limit(value: str | None) -> Limit:
    """Upload-Limit as a client reads it: unknown or malformed members are ignored."""
    found: dict[str, int] = {}
    for member in (value or "").split(","):
        key, _, raw = member.strip().partition("=")
        raw = raw.split(";", 1)[0].strip()
        if raw.isascii() and raw.isdigit():
            found[key.strip().lower()] = int(raw)
    return Limit(found.get("max-size"), found.get("max-append-size"), found.get("expires"))


def creation_headers(version: int, length: int | None) -> dict[str, str]:
    """A client's creation request without a body (aiohttp hides the 104 that would carry
    the URL of an upload created with one): the URL first, then appends."""
    headers = {INTEROP_HEADER: str(version), **format_complete(version, False)}
    if length is not None:
        headers["Upload-Length"] = str(length)
    return headers


def append_headers(version: int, offset: int, complete: bool) -> dict[str, str]:
    headers = {
        INTEROP_HEADER: str(version),
        "Upload-Offset": str(offset),
        **format_complete(version, complete),
    }
    if version >= 6:
        headers["Content-Type"] = PARTIAL_UPLOAD
    return headers


def offer_headers(versions: tuple[int, ...] = SUPPORTED_VERSIONS) -> dict[str, str]:
    """What upwell serve says in its OPTIONS answer: the interop versions it speaks (not in
    the draft, which discovers by trying; a client may use it to choose)."""
    return {INTEROP_HEADER: ", ".join(str(v) for v in versions)}


def offered_versions(headers: Mapping[str, str]) -> tuple[int, ...]:
    raw = headers.get(INTEROP_HEADER) or ""
    found = []
    for item in raw.split(","):
        item = item.strip()
        if item.isascii() and item.isdigit() and int(item) in SUPPORTED_VERSIONS:
            found.append(int(item))
    return tuple(sorted(set(found), reverse=True))
