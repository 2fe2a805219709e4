"""Rich progress bars for the CLI, fed by the same UploadProgress events as every consumer."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from ..progress import UploadProgress


class _SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = float(task.fields.get("speed") or 0.0)
        return Text(
            f"{speed / 1e6:7.1f} MB/s" if speed else "     -- MB/s", style="progress.data.speed"
        )


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if task.finished:
            return Text("done", style="progress.remaining")
        if eta is None:
            return Text("-:--:--", style="progress.remaining")
        s = int(eta)
        return Text(f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}", style="progress.remaining")


class ProgressDisplay:
    """One bar per file and a total bar, with speed and time remaining."""

    def __init__(self, files: int, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _SpeedColumn(),
            _EtaColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._latest: dict[str, UploadProgress] = {}
        self._total = (
            self._progress.add_task("[bold]total", total=0, speed=0.0, eta=None)
            if files > 1
            else None
        )

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, p: UploadProgress) -> None:
        tid = self._tasks.get(p.task_id)
        name = (p.file_path or p.task_id).rsplit("/", 1)[-1]
        if tid is None:
            tid = self._progress.add_task(name, total=p.bytes_total or None, speed=0.0, eta=None)
            self._tasks[p.task_id] = tid
        label = name if p.stage != "failed" else f"[red]{name} (failed)"
        self._progress.update(
            tid,
            description=label,
            total=p.bytes_total or None,
            completed=p.bytes_uploaded,
            speed=p.upload_speed,
            eta=p.estimated_seconds,
        )
        self._latest[p.task_id] = p
        if self._total is not None:
            done = sum(x.bytes_uploaded for x in self._latest.values())
            total = sum(x.bytes_total for x in self._latest.values())
            speed = sum(x.upload_speed for x in self._latest.values() if x.stage == "uploading")
            eta = (total - done) / speed if speed else None
            self._progress.update(self._total, total=total, completed=done, speed=speed, eta=eta)
