"""The catalog's JSON: one upload record as GET /uploads/{id}, the list and the events show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...errors import ProtocolError
from ...protocols import tus
from ..state import Record, Upload, UploadStatus


def _metadata(upload: Upload) -> dict[str, bytes]:
    try:
        return tus.decode_metadata(upload.metadata)
    except ProtocolError:  # validated at creation; an older record is shown without it
        return {}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def filename_of(upload: Upload) -> str | None:
    """The file name the client gave (tus metadata `filename`, or `name`)."""
    meta = _metadata(upload)
    return _text(meta.get("filename") or meta.get("name"))


def filetype_of(upload: Upload) -> str | None:
    """The media type the client gave (tus metadata `filetype`, or `type`)."""
    meta = _metadata(upload)
    return _text(meta.get("filetype") or meta.get("type"))


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def status_now(record: Record, now: datetime) -> UploadStatus:
    """The record's status, "expired" once an unfinished upload's expiry has passed."""
    return "expired" if record.upload.expired(now) else record.status


def record_json(record: Record, now: datetime, upload_path: str) -> dict[str, Any]:
    """The contract's record; `url` is the tus upload's path here, made absolute per request
    (the origin depends on who asks, behind a proxy)."""
    upload = record.upload
    return {
        "id": upload.id,
        "owner": upload.owner,
        "filename": filename_of(upload),
        "type": filetype_of(upload),
        "size": upload.length,
        "offset": upload.offset,
        "sha256": upload.sha256,
        "status": status_now(record, now),
        "created": _iso(upload.created),
        "expires": _iso(upload.expires),
        "url": upload_path + upload.id,
        "forwards": [
            {
                "target": f.target,
                "state": f.state,
                "attempts": f.attempts,
                "error": f.error,
                "file_name": f.file_name,
                "file_uri": f.file_uri,
            }
            for f in record.forwards
        ],
    }


def absolute(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """A record (or an event carrying one) with its `url` made absolute for `origin`."""
    url = data.get("url")
    if isinstance(url, str) and url.startswith("/"):
        return {**data, "url": origin + url}
    return data
