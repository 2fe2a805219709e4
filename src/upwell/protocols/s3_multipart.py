"""S3 multipart upload, without I/O: limits, object keys, part numbers, checksum values, the
signed headers of a presigned request, ListParts pages and S3 errors.

The control calls (CreateMultipartUpload, ListParts, CompleteMultipartUpload, Abort) go through
aiobotocore, whose parsed responses are read here; part bodies go through upwell's own HTTP
pool to presigned URLs, whose headers are built here.
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, TargetError, UploadGone
from .http import parse_retry_after

MiB = 1024 * 1024
GiB = 1024 * MiB
#: Every part but the last is at least this (S3's EntityTooSmall otherwise).
MIN_PART_SIZE = 5 * MiB
#: No part, and no single PutObject, is larger.
MAX_PART_SIZE = 5 * GiB
#: Part numbers run 1..10,000.
MAX_PARTS = 10_000
#: The largest object multipart can assemble within those limits.
MAX_OBJECT_SIZE = MAX_PARTS * MAX_PART_SIZE
#: How long a presigned part URL stays valid (seconds): long enough for a slow 5 GiB part.
PRESIGN_EXPIRES = 6 * 3600

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ObjectURL:
    """`s3://bucket/key`; a key that is empty or ends in `/` is a prefix for the file name."""

    bucket: str
    key: str

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def object_key(self, file_name: str) -> str:
        """The key the file is stored under."""
        return self.key + file_name if self.is_prefix else self.key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(spec: str) -> ObjectURL:
    """`s3://bucket/key` → ObjectURL; ConfigError for anything else."""
    parts = urlsplit(spec)
    if parts.scheme != "s3":
        raise ConfigError(f"{spec!r} is not an s3://bucket/key URL")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError("an s3:// target carries no query, fragment or credentials")
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise ConfigError(
            f"S3 bucket name {bucket!r} is not valid (3-63 lowercase letters, digits, '.', '-')"
        )
    key = parts.path.removeprefix("/")
    if len(key.encode("utf-8")) > 1024:
        raise ConfigError("an S3 object key is at most 1024 bytes")
    return ObjectURL(bucket, key)


def checksum_value(sha256: bytes) -> str:
    """The `x-amz-checksum-sha256` value: the base64 of the raw digest."""
    if len(sha256) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    return base64.b64encode(sha256).decode("ascii")


def part_number(offset: int, chunk_size: int) -> int:
    """The 1-based S3 part number of the chunk starting at `offset`."""
    if offset % chunk_size:
        raise ValueError(f"offset {offset} is not at a part boundary of {chunk_size}")
    return offset // chunk_size + 1


def check_layout(file_size: int, chunk_size: int) -> None:
    """Refuse, before the first byte, a split S3 would reject at Complete."""
    if file_size > MAX_OBJECT_SIZE:
        raise ConfigError(f"S3 objects are at most {MAX_OBJECT_SIZE} bytes by multipart")
    if chunk_size > MAX_PART_SIZE:
        raise ConfigError(f"S3 parts are at most 5 GiB, not {chunk_size} bytes")
    parts = -(-file_size // chunk_size) if file_size else 1
    if parts > MAX_PARTS:
        raise ConfigError(f"{parts} parts of {chunk_size} bytes exceed S3's {MAX_PARTS}")
    if parts > 1 and chunk_size < MIN_PART_SIZE:
        raise ConfigError(f"S3 parts but the last are at least 5 MiB, not {chunk_size} bytes")


def signed_headers(presigned_url: str) -> tuple[str, ...]:
    """The header names a presigned SigV4 URL was signed with (X-Amz-SignedHeaders)."""
    query = parse_qs(urlsplit(presigned_url).query)
    raw = query.get("X-Amz-SignedHeaders", [""])[0]
    return tuple(h for h in raw.lower().split(";") if h)


def presigned_headers(presigned_url: str, values: Mapping[str, str]) -> dict[str, str]:
    """The headers to send with a presigned request: every signed header but Host, each with
    the value it was signed with (`values`, by lower-case name). A signed header we cannot
    supply would fail with SignatureDoesNotMatch, so it is an error here instead."""
    out: dict[str, str] = {}
    lower = {k.lower(): v for k, v in values.items()}
    for name in signed_headers(presigned_url):
        if name == "host":
            continue
        if name not in lower:
            raise TargetError(f"the presigned request needs a {name} header upwell did not sign")
        out[name] = lower[name]
    return out


@dataclass(frozen=True)
class ListedPart:
    """A part S3 holds for an unfinished multipart upload."""

    number: int
    size: int
    etag: str
    checksum_sha256: str | None = None


def listed_parts(pages: Iterable[Mapping[str, Any]]) -> dict[int, ListedPart]:
    """The parts in ListParts responses (as botocore parses them), by part number."""
    out: dict[int, ListedPart] = {}
    for page in pages:
        for p in page.get("Parts", []) or []:
            number = int(p["PartNumber"])
            out[number] = ListedPart(
                number=number,
                size=int(p["Size"]),
                etag=str(p["ETag"]),
                checksum_sha256=p.get("ChecksumSHA256"),
            )
    return out


def next_marker(page: Mapping[str, Any]) -> int | None:
    """The PartNumberMarker for the next ListParts page, or None after the last."""
    if not page.get("IsTruncated"):
        return None
    marker = page.get("NextPartNumberMarker")
    return int(marker) if marker is not None else None


def usable(listed: ListedPart | None, size: int) -> bool:
    """Whether a listed part can stand in for the planned one: same size (a part uploaded
    with another split cannot)."""
    return listed is not None and listed.size == size


def complete_parts(parts: Mapping[int, ListedPart]) -> dict[str, Any]:
    """The MultipartUpload argument of CompleteMultipartUpload: parts in order, each with its
    ETag and, when it was uploaded with one, its SHA-256."""
    out = []
    for number in sorted(parts):
        p = parts[number]
        entry: dict[str, Any] = {"PartNumber": number, "ETag": p.etag}
        if p.checksum_sha256:
            entry["ChecksumSHA256"] = p.checksum_sha256
        out.append(entry)
    return {"Parts": out}


@dataclass(frozen=True)
class S3ErrorBody:
    code: str
    message: str


def parse_error_xml(body: str | bytes) -> S3ErrorBody | None:
    """`<Error><Code>…</Code><Message>…</Message></Error>`, or None when it is not one."""
    if not body:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if root.tag != "Error":
        return None
    return S3ErrorBody(root.findtext("Code") or "", root.findtext("Message") or "")


#: S3 codes worth the same request again (throttling, transient server trouble, damaged bytes).
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "OperationAborted",
    }
)
_GONE_CODES = frozenset({"NoSuchUpload"})
# Not tus's set: S3's 409s (OperationAborted aside, listed above) are final.
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HINTS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "check the AWS credentials and the bucket policy",
    "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID (and AWS_ENDPOINT_URL for non-AWS storage)",
    "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY and the region",
    "EntityTooSmall": "a part but the last was under 5 MiB",
    "EntityTooLarge": "a part or object was over 5 GiB",
}


def error_for(
    what: str,
    status: int | None,
    code: str,
    message: str = "",
    headers: Mapping[str, str] | None = None,
) -> TargetError:
    """A TargetError for an S3 error: UploadGone for an upload S3 no longer has, retryable for
    throttling, 5xx and damaged bytes, otherwise final with a hint."""
    detail = code or (f"HTTP {status}" if status else "error")
    hint = _HINTS.get(code)
    text = f"{what}: S3 {detail}" + (f" ({message[:200]})" if message else "")
    if hint:
        text += f"; {hint}"
    if code in _GONE_CODES:
        return UploadGone(text, status=status)
    retryable = code in RETRYABLE_CODES or (status is not None and status in _RETRYABLE_STATUSES)
    return TargetError(
        text,
        status=status,
        retryable=retryable,
        retry_after=parse_retry_after((headers or {}).get("Retry-After")),
    )


def composite_checksum(part_checksums: list[str]) -> str:
    """The checksum S3 gives a multipart object: the SHA-256 of the parts' raw SHA-256s, in
    order, as `<base64>-<parts>`; empty when a part has none."""
    if not part_checksums or any(not c for c in part_checksums):
        return ""
    joined = b"".join(base64.b64decode(c) for c in part_checksums)
    digest = base64.b64encode(hashlib.sha256(joined).digest()).decode("ascii")
    return f"{digest}-{len(part_checksums)}"
