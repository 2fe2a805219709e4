"""Progress: one event type (`UploadProgress`) for every consumer, and the tracker that makes it.

Bytes are counted where they are handed to the socket; speed is an exponentially weighted
average so a bar does not jitter; events are rate-limited so a fast upload does not flood a
callback, but stage changes always go out.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], float]

STAGES = ("preparing", "chunking", "uploading", "finalizing", "complete", "failed")


@dataclass(frozen=True)
class UploadProgress:
    """One progress update: the seed's fields plus speed, task id and the result."""

    percentage: float
    stage: str
    message: str
    bytes_uploaded: int
    bytes_total: int
    chunk_index: int
    total_chunks: int
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    estimated_seconds: float | None = None
    upload_speed: float = 0.0
    task_id: str = ""
    file_path: str | None = None
    file_uri: str | None = None
    #: The target's name for the file where it has one (Gemini: `files/abc123`).
    file_name: str | None = None
    error: str | None = None
    compression_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The seed's StreamingProgress: JSON-ready, for NDJSON lines and SSE events."""
        data: dict[str, Any] = {
            "percentage": round(self.percentage, 2),
            "stage": self.stage,
            "message": self.message,
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_total": self.bytes_total,
            "chunk_index": self.chunk_index,
            "total_chunks": self.total_chunks,
            "timestamp": self.timestamp.isoformat(),
            "upload_speed": round(self.upload_speed),
            "estimated_seconds": (
                None if self.estimated_seconds is None else round(self.estimated_seconds, 1)
            ),
            "task_id": self.task_id,
        }
        if self.file_path is not None:
            data["file_path"] = self.file_path
        if self.file_uri is not None:
            data["file_uri"] = self.file_uri
        if self.file_name is not None:
            data["file_name"] = self.file_name
        if self.error is not None:
            data["error"] = self.error
        if self.compression_ratio is not None:
            data["compression_ratio"] = round(self.compression_ratio, 3)
        return data


def to_ndjson(progress: UploadProgress) -> str:
    """One NDJSON line (with its newline)."""
    return json.dumps(progress.to_dict(), separators=(",", ":")) + "\n"


def to_sse(progress: UploadProgress, event: str = "progress") -> str:
    """One Server-Sent Events message."""
    return f"event: {event}\ndata: {json.dumps(progress.to_dict(), separators=(',', ':'))}\n\n"


ProgressCallback = Callable[[UploadProgress], Any] | None


@dataclass
class _Task:
    progress: UploadProgress
    last_emit: float = -math.inf
    last_sample_time: float = 0.0
    last_sample_bytes: int = 0
    speed: float = 0.0


class ProgressTracker:
    """Progress of many concurrent uploads, keyed by task id (the seed's ProgressTracker).

    `listener` receives every emitted event. `min_interval` bounds how often byte-level
    updates are emitted per task; `speed_window` is the smoothing time constant in seconds.
    """

    def __init__(
        self,
        listener: Callable[[UploadProgress], None] | None = None,
        *,
        clock: Clock = time.monotonic,
        min_interval: float = 0.1,
        speed_window: float = 2.0,
    ) -> None:
        self._tasks: dict[str, _Task] = {}
        self._listeners: list[Callable[[UploadProgress], None]] = [listener] if listener else []
        self._clock = clock
        self._min_interval = min_interval
        self._speed_window = speed_window

    def add_listener(self, listener: Callable[[UploadProgress], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[UploadProgress], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def create_task(
        self,
        task_id: str,
        bytes_total: int,
        total_chunks: int = 0,
        *,
        file_path: str | None = None,
        message: str = "Preparing upload",
    ) -> UploadProgress:
        """Start tracking a task; emits its first ("preparing") event."""
        now = self._clock()
        progress = UploadProgress(
            percentage=0.0,
            stage="preparing",
            message=message,
            bytes_uploaded=0,
            bytes_total=bytes_total,
            chunk_index=0,
            total_chunks=total_chunks,
            task_id=task_id,
            file_path=file_path,
        )
        self._tasks[task_id] = _Task(progress=progress, last_sample_time=now)
        self._emit(self._tasks[task_id], now, force=True)
        return progress

    def update_progress(
        self,
        task_id: str,
        *,
        bytes_uploaded: int | None = None,
        bytes_total: int | None = None,
        stage: str | None = None,
        message: str | None = None,
        chunk_index: int | None = None,
        total_chunks: int | None = None,
        compression_ratio: float | None = None,
        force: bool = False,
    ) -> UploadProgress:
        """Update a task; an event goes out on a stage change, when forced, or at most every
        `min_interval` seconds."""
        task = self._tasks[task_id]
        now = self._clock()
        old = task.progress
        given: dict[str, Any] = {
            "bytes_total": bytes_total,
            "bytes_uploaded": bytes_uploaded,
            "chunk_index": chunk_index,
            "total_chunks": total_chunks,
            "compression_ratio": compression_ratio,
            "message": message,
            "stage": stage,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        new = replace(old, **changes)
        self._sample_speed(task, now, new.bytes_uploaded)
        task.progress = new
        stage_changed = stage is not None and stage != old.stage
        self._emit(task, now, force=force or stage_changed)
        return task.progress

    def complete_task(
        self,
        task_id: str,
        file_uri: str | None,
        message: str = "Upload complete",
        *,
        file_name: str | None = None,
    ) -> UploadProgress:
        task = self._tasks[task_id]
        now = self._clock()
        total = task.progress.bytes_total
        self._sample_speed(task, now, total)
        task.progress = replace(
            task.progress,
            stage="complete",
            message=message,
            bytes_uploaded=total,
            chunk_index=max(task.progress.total_chunks - 1, 0),
            file_uri=file_uri,
            file_name=file_name,
        )
        self._emit(task, now, force=True)
        return task.progress

    def fail_task(self, task_id: str, error: str) -> UploadProgress:
        task = self._tasks[task_id]
        task.progress = replace(task.progress, stage="failed", message=error, error=error)
        self._emit(task, self._clock(), force=True)
        return task.progress

    def get_task(self, task_id: str) -> UploadProgress | None:
        task = self._tasks.get(task_id)
        return task.progress if task else None

    def remove_task(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def _sample_speed(self, task: _Task, now: float, bytes_uploaded: int) -> None:
        dt = now - task.last_sample_time
        if dt < 0.05:
            return
        delta = max(0, bytes_uploaded - task.last_sample_bytes)
        rate = delta / dt
        if task.speed == 0.0:
            task.speed = rate
        else:
            alpha = 1.0 - math.exp(-dt / self._speed_window)
            task.speed += alpha * (rate - task.speed)
        task.last_sample_time = now
        task.last_sample_bytes = bytes_uploaded

    def _emit(self, task: _Task, now: float, *, force: bool) -> None:
        if not force and now - task.last_emit < self._min_interval:
            return
        task.last_emit = now
        p = task.progress
        total = p.bytes_total
        pct = (
            100.0
            if total == 0 and p.stage == "complete"
            else (100.0 * p.bytes_uploaded / total if total else 0.0)
        )
        remaining = max(0, total - p.bytes_uploaded)
        eta = remaining / task.speed if task.speed > 0 else None
        if p.stage == "complete":
            eta = 0.0
        task.progress = replace(
            p,
            percentage=min(pct, 100.0),
            upload_speed=task.speed,
            estimated_seconds=eta,
            timestamp=datetime.now(UTC),
        )
        for listener in list(self._listeners):
            listener(task.progress)
