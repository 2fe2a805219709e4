"""Upload ids: random 128-bit, written as 32 lowercase hex digits. Nothing else names a file."""

from __future__ import annotations

import re
import secrets

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def new_upload_id() -> str:
    return secrets.token_hex(16)


def is_upload_id(value: str) -> bool:
    """True only for the ids `new_upload_id` makes, so no other string reaches the disk."""
    return _UPLOAD_ID.fullmatch(value) is not None
