"""What an upload returns: the seed's UploadResult and ChunkMetadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChunkMetadata:
    """One chunk of a file: where it is, its SHA-256, and whether the target has it."""

    index: int
    offset: int
    size: int
    checksum: str = ""
    uploaded: bool = False
    upload_time: float = 0.0
    error: str | None = None


@dataclass
class UploadResult:
    """The outcome of one file's upload. `success` False always comes with an `error`."""

    success: bool
    file_path: str
    file_uri: str | None = None
    file_name: str | None = None
    total_size: int = 0
    upload_duration: float = 0.0
    chunks_uploaded: int = 0
    total_chunks: int = 0
    sha256: str | None = None
    bytes_sent: int = 0
    bytes_on_wire: int = 0
    error: str | None = None
    error_type: str | None = None
    session_id: str | None = None
    chunks: list[ChunkMetadata] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def compression_ratio(self) -> float:
        """Bytes on the wire per file byte sent: 1.0 uncompressed, 0.3 for text that gzips well."""
        return self.bytes_on_wire / self.bytes_sent if self.bytes_sent else 1.0

    @property
    def average_speed(self) -> float:
        """Bytes per second over the whole upload."""
        return self.total_size / self.upload_duration if self.upload_duration > 0 else 0.0
