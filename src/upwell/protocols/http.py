"""HTTP facts every protocol shares: which statuses are worth retrying, Retry-After."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime

from ..errors import TargetError

# Statuses where the same request may succeed later. 409/423/460 are tus's "your view of the
# offset is stale / someone else is writing / the bytes were damaged": ask again and resend.
RETRYABLE_STATUSES = frozenset({408, 409, 423, 425, 429, 460, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
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
