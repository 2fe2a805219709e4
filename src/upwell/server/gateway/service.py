"""`Gateway`: what the catalog does beside the tus server. It hears every upload change
(`UploadObserver`), publishes progress and record events, counts metrics and starts forwards."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ...progress import UploadProgress
from ..metrics import Metrics
from ..state import StateStore, Upload
from ..uploads import Uploads
from .events import EventBus
from .forwarding import ForwardClaims, Forwarder, ForwardPolicy, ForwardTarget
from .records import record_json

PROGRESS_INTERVAL = 0.25  # seconds between receive progress events of one upload
_SPEED_WEIGHT = 0.3  # weight of the newest sample in the speed average


@dataclass
class _Receiving:
    offset: int
    counted: int  # bytes already added to the received-bytes counter
    sample_time: float
    sample_offset: int
    emitted: float = -math.inf
    speed: float = 0.0


class Gateway:
    """Catalog events, metrics and forwarding for one server."""

    def __init__(
        self,
        state: StateStore,
        bus: EventBus,
        metrics: Metrics,
        base_path: str,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.bus = bus
        self.metrics = metrics
        self.base_path = base_path
        self._now = now
        self._monotonic = monotonic
        self._receiving: dict[str, _Receiving] = {}
        self._forward_choice: dict[str, list[str]] = {}
        self.forwarder: Forwarder | None = None

    def attach(
        self,
        uploads: Uploads,
        targets: Sequence[ForwardTarget],
        session_dir: Path,
        policy: ForwardPolicy | None,
        claims: ForwardClaims | None = None,
    ) -> None:
        """Forward through `uploads` to `targets` (called once, after Uploads exists);
        `claims` decides which replica runs a forward when several share the state."""
        self.forwarder = Forwarder(
            targets,
            self.state,
            uploads,
            session_dir,
            self._publish_forward,
            policy,
            on_attempt=self.metrics.forward_attempt,
            claims=claims,
        )

    def now(self) -> datetime:
        return self._now()

    def choose_forwards(self, upload_id: str, names: list[str]) -> None:
        """Forward this upload, when it completes, only to `names` (POST /upload's field)."""
        self._forward_choice[upload_id] = names

    # -- UploadObserver ---------------------------------------------------------------
    async def receiving(self, upload: Upload, offset: int) -> None:
        now = self._monotonic()
        entry = self._receiving.get(upload.id)
        if entry is None:
            entry = self._receiving[upload.id] = _Receiving(
                upload.offset, upload.offset, now, upload.offset
            )
        self.metrics.received.inc(max(0, offset - entry.counted))
        entry.counted = max(entry.counted, offset)
        entry.offset = offset
        elapsed = now - entry.sample_time
        if elapsed >= PROGRESS_INTERVAL / 2:
            rate = (offset - entry.sample_offset) / elapsed
            entry.speed = (
                rate
                if entry.speed == 0
                else (_SPEED_WEIGHT * rate + (1 - _SPEED_WEIGHT) * entry.speed)
            )
            entry.sample_time, entry.sample_offset = now, offset
        if now - entry.emitted >= PROGRESS_INTERVAL:
            entry.emitted = now
            await self._publish_receive(upload, offset, entry.speed, "uploading")

    async def changed(self, upload: Upload) -> None:
        entry = self._receiving.pop(upload.id, None)
        if entry is not None:
            self.metrics.received.inc(max(0, upload.offset - entry.counted))
        if upload.completed:
            self.metrics.size.observe(upload.offset)
            seconds = (self._now() - upload.created).total_seconds()
            self.metrics.duration.observe(max(0.0, seconds))
            await self._publish_receive(upload, upload.offset, 0.0, "finalizing")
            names = self._forward_choice.pop(upload.id, None)
            if self.forwarder is not None and await self.forwarder.enqueue(upload, names):
                return  # enqueue published the record, now "forwarding"
            await self.publish_record(upload)
        elif upload.offset == 0:
            await self.publish_record(upload)
        else:
            speed = entry.speed if entry is not None else 0.0
            await self._publish_receive(upload, upload.offset, speed, "uploading")

    async def removed(self, upload: Upload) -> None:
        self._receiving.pop(upload.id, None)
        self._forward_choice.pop(upload.id, None)
        await self.bus.publish(upload.owner, upload.id, "record", {"id": upload.id, **_GONE})

    def checksum_mismatch(self, upload: Upload) -> None:
        self.metrics.checksum_mismatches.inc()

    # -- events -------------------------------------------------------------------------
    async def publish_record(self, upload: Upload) -> None:
        """Publish the upload's whole record (its status or a forward changed)."""
        record = await self.state.record(upload.id)
        if record is not None:
            data = record_json(record, self._now(), self.base_path)
            await self.bus.publish(upload.owner, upload.id, "record", data)

    async def _publish_receive(self, upload: Upload, offset: int, speed: float, stage: str) -> None:
        total = upload.length or 0
        remaining = (total - offset) if total else 0
        progress = UploadProgress(
            percentage=100.0 * offset / total if total else 0.0,
            stage=stage,
            message="Received" if stage == "finalizing" else "Receiving",
            bytes_uploaded=offset,
            bytes_total=total,
            chunk_index=0,
            total_chunks=0,
            estimated_seconds=remaining / speed if speed > 0 and total else None,
            upload_speed=speed,
            task_id=upload.id,
        )
        await self.bus.publish(
            upload.owner, upload.id, "progress", progress_json(upload, progress, "receive", None)
        )

    async def _publish_forward(
        self, upload: Upload, progress: UploadProgress | None, target: str
    ) -> None:
        if progress is None:
            await self.publish_record(upload)
            return
        data = progress_json(upload, progress, "forward", target)
        await self.bus.publish(upload.owner, upload.id, "progress", data)


# A record event for an upload that no longer exists (deleted, expired, never finished).
_GONE: dict[str, Any] = {"status": "deleted", "deleted": True}


def progress_json(
    upload: Upload, progress: UploadProgress, phase: str, target: str | None
) -> dict[str, Any]:
    """The seed's StreamingProgress fields plus upload_id, phase and target."""
    data = progress.to_dict()
    data.pop("file_path", None)  # the server's own path: none of the client's business
    data["task_id"] = upload.id
    data.update(upload_id=upload.id, phase=phase, target=target)
    return data
