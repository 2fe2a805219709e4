"""UploadSession: the seed's fields, plus the target and what it needs to resume."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import SessionError
from ..results import ChunkMetadata

DEFAULT_EXPIRY = timedelta(hours=48)
STATUSES = ("active", "paused", "complete", "failed")


def derive_session_id(file_path: Path, size: int, mtime_ns: int, target: str) -> str:
    """The id of "this file, as it is now, to this target": the same command resumes itself.

    `file_path` should be absolute (resolved by the caller, off the event loop)."""
    key = f"{file_path}\0{size}\0{mtime_ns}\0{target}".encode()
    return "upload_" + hashlib.sha256(key).hexdigest()[:24]


@dataclass
class UploadSession:
    """A persisted upload. Never holds an API key; `target_state` holds upload URLs."""

    session_id: str
    file_path: Path
    file_size: int
    file_checksum: str
    chunk_size: int
    total_chunks: int
    chunks_completed: list[int]
    chunks_metadata: list[ChunkMetadata]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    status: str = "active"
    compression_enabled: bool = False
    bandwidth_limit: int | None = None
    target: str = ""
    target_state: dict[str, Any] = field(default_factory=dict)
    file_mtime_ns: int = 0
    parts: int = 1
    file_uri: str | None = None
    file_name: str | None = None
    display_name: str | None = None
    error: str | None = None

    def get_progress_percentage(self) -> float:
        if self.file_size == 0:
            return 100.0 if self.status == "complete" else 0.0
        done = sum(c.size for c in self.chunks_metadata if c.index in set(self.chunks_completed))
        return min(100.0, 100.0 * done / self.file_size)

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def touch(self, now: datetime | None = None) -> None:
        self.updated_at = now or datetime.now(UTC)

    def summary(self) -> dict[str, Any]:
        """What programs are shown (`upwell sessions list --json`, MCP): no target state."""
        return {
            "session_id": self.session_id,
            "status": self.status,
            "progress_percentage": round(self.get_progress_percentage(), 2),
            "file_path": str(self.file_path),
            "file_size": self.file_size,
            "chunks_completed": len(self.chunks_completed),
            "total_chunks": self.total_chunks,
            "target": self.target,
            "file_uri": self.file_uri,
            "expires_at": self.expires_at.isoformat(),
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["file_path"] = str(self.file_path)
        for key in ("created_at", "updated_at", "expires_at"):
            data[key] = getattr(self, key).isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadSession:
        try:
            return cls(
                session_id=str(data["session_id"]),
                file_path=Path(data["file_path"]),
                file_size=int(data["file_size"]),
                file_checksum=str(data.get("file_checksum", "")),
                chunk_size=int(data["chunk_size"]),
                total_chunks=int(data["total_chunks"]),
                chunks_completed=[int(i) for i in data.get("chunks_completed", [])],
                chunks_metadata=[ChunkMetadata(**c) for c in data.get("chunks_metadata", [])],
                created_at=datetime.fromisoformat(data["created_at"]),
                updated_at=datetime.fromisoformat(data["updated_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
                status=str(data.get("status", "active")),
                compression_enabled=bool(data.get("compression_enabled", False)),
                bandwidth_limit=data.get("bandwidth_limit"),
                target=str(data.get("target", "")),
                target_state=dict(data.get("target_state") or {}),
                file_mtime_ns=int(data.get("file_mtime_ns", 0)),
                parts=int(data.get("parts", 1)),
                file_uri=data.get("file_uri"),
                file_name=data.get("file_name"),
                display_name=data.get("display_name"),
                error=data.get("error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionError(f"session record is damaged ({exc})") from None
