"""Upload records: what the server knows of each upload besides its bytes.

`StateStore` is the interface; `sqlite.SQLiteStateStore` the embedded default (one file under
the data directory, WAL mode). A PostgreSQL store implements the same methods for scale-out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

ConcatKind = Literal["partial", "final"]
UploadStatus = Literal["receiving", "stored", "forwarding", "forwarded", "failed", "expired"]
ForwardState = Literal["pending", "running", "done", "failed", "deduped"]

#: The owner of uploads on a server that runs without tokens.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Upload:
    """One upload: its size (None while deferred), the bytes received so far, and its metadata."""

    id: str
    length: int | None
    offset: int
    metadata: str  # the raw Upload-Metadata header, validated at creation
    created: datetime
    expires: datetime | None  # None once complete: finished uploads do not expire
    concat: ConcatKind | None = None
    parts: tuple[str, ...] = ()  # ids of the partial uploads a final one was built from
    sha256: str | None = None  # hex digest of the complete file, when known
    owner: str = ANONYMOUS  # who may see and touch it (auth maps tokens to owners)
    completed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "completed", self.length is not None and self.offset == self.length
        )

    def expired(self, now: datetime) -> bool:
        return not self.completed and self.expires is not None and self.expires <= now


@dataclass(frozen=True)
class Forward:
    """One upload's forward to one target (by its `--forward` name), as journaled."""

    upload_id: str
    target: str
    state: ForwardState = "pending"
    attempts: int = 0
    error: str | None = None
    file_name: str | None = None  # the provider's own id for the file
    file_uri: str | None = None


@dataclass(frozen=True)
class Record:
    """An upload as the catalog shows it: the upload, its status and its forwards."""

    upload: Upload
    status: UploadStatus
    forwards: tuple[Forward, ...] = ()


@dataclass(frozen=True)
class Usage:
    """What one owner holds: unfinished uploads and bytes stored."""

    unfinished: int
    stored_bytes: int


class StateStore(Protocol):
    """Where upload records live. Every method is one atomic step."""

    async def create(self, upload: Upload) -> None:
        """Record a new upload; its id is new."""

    async def get(self, upload_id: str) -> Upload | None:
        """The upload, or None when it is unknown."""

    async def update(self, upload: Upload) -> None:
        """Store the upload's new offset, length, expiry and digest."""

    async def delete(self, upload_id: str) -> bool:
        """Forget the upload; False when it was unknown."""

    async def expired(self, now: datetime, limit: int = 1000) -> list[str]:
        """Ids of unfinished uploads whose expiry has passed, at most `limit`."""

    async def known(self, upload_ids: Sequence[str]) -> set[str]:
        """Which of `upload_ids` have a record."""

    # -- the catalog ------------------------------------------------------------------
    # An upload's status starts "receiving" ("stored" if created complete); `update` turns
    # "receiving" into "stored" when the upload completes; `save_forward` sets it after that.

    async def record(self, upload_id: str) -> Record | None:
        """The upload with its status and forwards (in target order), or None when unknown."""

    async def records(
        self,
        owner: str,
        *,
        status: UploadStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[Record]:
        """The owner's uploads newest first (by created, then id), older than `before`."""

    async def save_forward(self, forward: Forward, status: UploadStatus) -> None:
        """Insert or replace the forward (upload_id, target) and set the upload's status."""

    async def unfinished_forwards(self, limit: int = 1000) -> list[Forward]:
        """Forwards still pending or running (a restart resumes them), oldest upload first."""

    async def forwarded(self, sha256: str, target: str) -> Forward | None:
        """A done forward to `target` of an upload whose bytes hash to `sha256`, if any."""

    async def usage(self, owner: str) -> Usage:
        """How many unfinished uploads the owner has and how many bytes it stores."""

    async def close(self) -> None:
        """Release the connection."""


from .sqlite import SQLiteStateStore  # noqa: E402

__all__ = [
    "ANONYMOUS",
    "ConcatKind",
    "Forward",
    "ForwardState",
    "Record",
    "SQLiteStateStore",
    "StateStore",
    "Upload",
    "UploadStatus",
    "Usage",
]
