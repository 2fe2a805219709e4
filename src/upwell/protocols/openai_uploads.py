"""OpenAI's Uploads API, sans-IO: one file in parts of at most 64 MB, up to 8 GB.

`POST {base}/uploads` (JSON: bytes, filename, mime_type, purpose) answers an Upload object
(`pending`, `expires_at` an hour on); `POST /uploads/{id}/parts` takes one part as the
multipart field `data` and answers a Part object with its id; `POST /uploads/{id}/complete`
(JSON: the ordered `part_ids`, and the whole file's `md5`) answers the Upload `completed`
with the File inside; `POST /uploads/{id}/cancel` ends it. The service keeps no list of
parts a client could ask for, so a client that wants to resume must keep the part ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from .openai_files import GiB, MiB, OpenAIFile, _object

MAX_PART_SIZE = 64 * MiB
MAX_UPLOAD_SIZE = 8 * GiB
UPLOAD_LIFETIME = 3600  # seconds from creation
PART_FIELD = "data"

PENDING = "pending"
COMPLETED = "completed"
CANCELLED = "cancelled"
EXPIRED = "expired"
STATUSES = frozenset({PENDING, COMPLETED, CANCELLED, EXPIRED})


def create_body(size: int, filename: str, mime_type: str, purpose: str) -> bytes:
    """The JSON body that creates an Upload."""
    doc = {"bytes": size, "filename": filename, "mime_type": mime_type, "purpose": purpose}
    return json.dumps(doc).encode()


def complete_body(part_ids: Sequence[str], md5_hex: str | None) -> bytes:
    """The JSON body that completes an Upload from its parts, in file order."""
    doc: dict[str, Any] = {"part_ids": list(part_ids)}
    if md5_hex:
        doc["md5"] = md5_hex
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Upload:
    id: str
    status: str
    bytes: int
    expires_at: int | None
    filename: str | None = None
    purpose: str | None = None
    created_at: int | None = None
    file: OpenAIFile | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Upload:
        upload_id = doc.get("id")
        status = doc.get("status")
        size = doc.get("bytes")
        if not isinstance(upload_id, str) or not upload_id:
            raise ProtocolError("the Upload object has no id", 502)
        if status not in STATUSES:
            raise ProtocolError(f"the Upload object's status {status!r} is unknown", 502)
        if not isinstance(size, int) or isinstance(size, bool):
            raise ProtocolError("the Upload object's bytes is not a number", 502)
        expires = doc.get("expires_at")
        created = doc.get("created_at")
        file_doc = doc.get("file")
        return cls(
            id=upload_id,
            status=str(status),
            bytes=size,
            expires_at=expires if isinstance(expires, int) else None,
            filename=doc.get("filename"),
            purpose=doc.get("purpose"),
            created_at=created if isinstance(created, int) else None,
            file=OpenAIFile.from_json(file_doc) if isinstance(file_doc, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "expires_at": self.expires_at,
            "file": self.file.to_json() if self.file is not None else None,
        }


def parse_upload(text: str) -> Upload:
    return Upload.from_json(_object(text, "Upload object"))


def parse_part(text: str) -> str:
    """The id of the Part object a part request answered."""
    doc = _object(text, "Part object")
    part_id = doc.get("id")
    if not isinstance(part_id, str) or not part_id:
        raise ProtocolError("the Part object has no id", 502)
    return part_id


def part_object(part_id: str, upload_id: str, created_at: int) -> dict[str, Any]:
    """A Part object as the service writes it (for the emulator)."""
    return {
        "id": part_id,
        "object": "upload.part",
        "created_at": created_at,
        "upload_id": upload_id,
    }


def expired_by(expires_at: int | None, now: float, margin: float) -> bool:
    """Whether an upload expiring at `expires_at` is gone, or will be within `margin` seconds
    (too late to send the rest and complete it)."""
    return expires_at is not None and now + margin >= expires_at
