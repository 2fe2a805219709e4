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
    completed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "completed", self.length is not None and self.offset == self.length
        )

    def expired(self, now: datetime) -> bool:
        return not self.completed and self.expires is not None and self.expires <= now


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

    async def close(self) -> None:
        """Release the connection."""


from .sqlite import SQLiteStateStore  # noqa: E402

__all__ = ["ConcatKind", "SQLiteStateStore", "StateStore", "Upload"]
