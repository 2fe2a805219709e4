"""HTTP facts every protocol shares: which statuses are worth retrying, Retry-After."""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ..errors import ProtocolError, TargetError

_DIGITS = re.compile(r"^[0-9]{1,19}$")


def parse_uint(value: str | None, header: str) -> int:
    """A non-negative integer header (Upload-Offset, X-Goog-Upload-Offset, …); a ProtocolError
    (400) when it is missing, malformed or beyond 2**63 - 1."""
    if value is None:
        raise ProtocolError(f"missing {header} header", 400)
    value = value.strip()
    if not _DIGITS.match(value):
        raise ProtocolError(f"{header} must be a non-negative integer, got {value[:40]!r}", 400)
    number = int(value)
    if number > 2**63 - 1:
        raise ProtocolError(f"{header} is out of range", 400)
    return number


# Statuses where the same request may succeed later. 409/423/460 are tus's "your view of the
# offset is stale / someone else is writing / the bytes were damaged": ask again and resend.
RETRYABLE_STATUSES = frozenset({408, 409, 423, 425, 429, 460, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if _DIGITS.match(value):  # str.isdigit() also takes '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def error_for_status(
    status: int, headers: Mapping[str, str], what: str, body: str = ""
) -> TargetError:
    """A TargetError for an unexpected status, retryable when the status says so."""
    reason = body.strip().splitlines()[0][:200] if body.strip() else ""
    message = f"{what}: HTTP {status}" + (f" ({reason})" if reason else "")
    return TargetError(
        message,
        status=status,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )


def provider_error(
    status: int,
    headers: Mapping[str, str],
    what: str,
    detail: str,
    *,
    label: str | None = None,
    refused_key: tuple[str, str] | None = None,
    retryable: bool | None = None,
) -> TargetError:
    """A TargetError for a provider API's error answer: `label` (default "HTTP status") and the
    provider's `detail`. With `refused_key` = (service, variable) the key was refused: never
    retried, and the message says which variable to check."""
    if refused_key is not None:
        service, variable = refused_key
        return TargetError(
            f"{what}: {service} refused the API key (HTTP {status}"
            + (f": {detail}" if detail else "")
            + f"); check {variable}",
            status=status,
            retryable=False,
        )
    return TargetError(
        f"{what}: {label or f'HTTP {status}'}" + (f" ({detail})" if detail else ""),
        status=status,
        retryable=status in RETRYABLE_STATUSES if retryable is None else retryable,
        retry_after=parse_retry_after(headers.get("Retry-After")),
    )


def format_repr_digest(sha256: bytes) -> str:
    """RFC 9530 Repr-Digest for a SHA-256: `sha-256=:<base64>:`."""
    return f"sha-256=:{base64.b64encode(sha256).decode('ascii')}:"


def parse_repr_digest(value: str | None) -> bytes | None:
    """The SHA-256 in an RFC 9530 Repr-Digest header, or None (absent, other algorithms,
    malformed)."""
    if not value:
        return None
    for member in value.split(","):
        key, _, item = member.strip().partition("=")
        if key.strip().lower() != "sha-256":
            continue
        item = item.strip()
        if len(item) < 2 or not (item.startswith(":") and item.endswith(":")):
            return None
        try:
            digest = base64.b64decode(item[1:-1], validate=True)
        except (binascii.Error, ValueError):
            return None
        return digest if len(digest) == 32 else None
    return None
