"""The tus 1.0 protocol, without I/O: header parsing and formatting for client and server.

Strict where a server must be (`parse_*` raise ProtocolError carrying the status to answer
with), forgiving where a client should be (`ServerInfo.from_headers` accepts what real servers
send).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import ProtocolError
from .http import parse_uint as parse_uint

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
    "concatenation-unfinished",
)
# Fastest first: the client picks the first one the server offers.
CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
# Header names a browser must be allowed to read and send (CORS).
EXPOSED_HEADERS = (
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Concat",
    "Upload-Checksum",
    "Location",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Repr-Digest",
    # The IETF resumable-upload draft, served at the same URLs.
    "Upload-Complete",
    "Upload-Draft-Interop-Version",
    "Upload-Limit",
)
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "Origin",
    "X-Requested-With",
    "X-HTTP-Method-Override",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "Tus-Resumable",
    "Want-Repr-Digest",
    "Upload-Complete",
    "Upload-Draft-Interop-Version",
)

_META_KEY = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space
MAX_METADATA_LENGTH = 16 * 1024


def check_version(value: str | None) -> None:
    """Tus-Resumable must name a version we speak; 412 (with Tus-Version) otherwise."""
    if value is None:
        raise ProtocolError("missing Tus-Resumable header", 412)
    if value.strip() != TUS_VERSION:
        raise ProtocolError(f"unsupported tus version {value.strip()[:20]!r}", 412)


def encode_metadata(items: Mapping[str, str | bytes | None]) -> str:
    """Upload-Metadata: `key base64(value)` pairs, comma-separated; None means key only."""
    parts = []
    for key, value in items.items():
        if not _META_KEY.match(key) or "," in key:
            raise ProtocolError(f"metadata key {key!r} must be printable ASCII without , or space")
        if value is None:
            parts.append(key)
            continue
        raw = value.encode("utf-8") if isinstance(value, str) else value
        parts.append(f"{key} {base64.b64encode(raw).decode('ascii')}")
    return ",".join(parts)


def decode_metadata(header: str | None) -> dict[str, bytes]:
    """Parse Upload-Metadata; an empty header is an empty mapping (tuspy sends one), but an
    empty pair in a non-empty one (`key dGVzdA==,`) has an empty key, which tus forbids."""
    if header is None or header.strip() == "":
        return {}
    if len(header) > MAX_METADATA_LENGTH:
        raise ProtocolError("Upload-Metadata is too long", 400)
    result: dict[str, bytes] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            raise ProtocolError("Upload-Metadata has an empty pair (a key must not be empty)", 400)
        key, _, value = pair.partition(" ")
        value = value.strip()
        if not _META_KEY.match(key) or " " in value:
            raise ProtocolError(f"malformed Upload-Metadata pair {pair[:40]!r}", 400)
        if key in result:
            raise ProtocolError(f"duplicate Upload-Metadata key {key[:40]!r}", 400)
        try:
            result[key] = base64.b64decode(value, validate=True) if value else b""
        except (binascii.Error, ValueError):
            raise ProtocolError(
                f"Upload-Metadata value of {key[:40]!r} is not base64", 400
            ) from None
    return result


def format_checksum(algorithm: str, digest: bytes) -> str:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


def parse_checksum(
    header: str, supported: tuple[str, ...] = CHECKSUM_ALGORITHMS
) -> tuple[str, bytes]:
    """Parse Upload-Checksum; 400 if malformed, 400 for an algorithm we do not offer."""
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in supported:
        raise ProtocolError(
            f"checksum algorithm {algorithm[:20]!r} is not supported; "
            f"use one of {', '.join(supported)}",
            400,
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("Upload-Checksum digest is not base64", 400) from None
    expected = {"sha256": 32, "sha1": 20, "md5": 16}[algorithm]
    if len(digest) != expected:
        raise ProtocolError(f"Upload-Checksum {algorithm} digest has the wrong length", 400)
    return algorithm, digest


@dataclass(frozen=True)
class Concat:
    """Upload-Concat: a partial upload, or a final one built from `parts` (URLs or paths)."""

    final: bool
    parts: tuple[str, ...] = ()


def parse_concat(header: str | None) -> Concat | None:
    if header is None:
        return None
    value = header.strip()
    if value == "partial":
        return Concat(final=False)
    if value.startswith("final;"):
        parts = tuple(p for p in value[len("final;") :].split(" ") if p)
        if not parts:
            raise ProtocolError("Upload-Concat final lists no partial uploads", 400)
        return Concat(final=True, parts=parts)
    raise ProtocolError(f"malformed Upload-Concat {value[:40]!r}", 400)


def format_concat_final(urls: list[str]) -> str:
    return "final;" + " ".join(urls)


def format_expires(when: datetime) -> str:
    """Upload-Expires uses the RFC 9110 HTTP date."""
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


def parse_expires(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class ServerInfo:
    """What a tus server says of itself in its OPTIONS answer."""

    versions: tuple[str, ...]
    extensions: tuple[str, ...]
    max_size: int | None
    checksum_algorithms: tuple[str, ...]
    #: Content codings the server decodes in request bodies (RFC 7694's Accept-Encoding on a
    #: response); not part of tus, offered by upwell serve.
    accept_encodings: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> ServerInfo:
        max_size_raw = (headers.get("Tus-Max-Size") or "").strip()
        # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
        max_size = int(max_size_raw) if max_size_raw.isascii() and max_size_raw.isdigit() else None
        return cls(
            versions=_csv(headers.get("Tus-Version")) or (TUS_VERSION,),
            extensions=_csv(headers.get("Tus-Extension")),
            max_size=max_size or None,
            checksum_algorithms=_csv(headers.get("Tus-Checksum-Algorithm")),
            accept_encodings=tuple(
                e.split(";")[0].strip() for e in _csv(headers.get("Accept-Encoding"))
            ),
        )

    def supports(self, extension: str) -> bool:
        return extension in self.extensions

    def checksum_algorithm(self) -> str | None:
        """The algorithm the client should use: SHA-256 first, as it is also our chunk hash."""
        for algorithm in CHECKSUM_ALGORITHMS:
            if algorithm in self.checksum_algorithms:
                return algorithm
        return None
