import json

from tests.support.contract import STREAMING_PROGRESS_FIELDS

from upwell.progress import ProgressTracker, UploadProgress, to_ndjson, to_sse


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_events_are_rate_limited_but_stage_changes_always_go_out() -> None:
    clock = Clock()
    seen: list[UploadProgress] = []
    tracker = ProgressTracker(seen.append, clock=clock, min_interval=0.1)
    tracker.create_task("t", 1000, 10)
    tracker.update_progress("t", stage="uploading")
    for i in range(1, 50):
        clock.t += 0.001
        tracker.update_progress("t", bytes_uploaded=i)
    assert [p.stage for p in seen] == ["preparing", "uploading"]
    clock.t += 0.2
    tracker.update_progress("t", bytes_uploaded=100)
    assert seen[-1].bytes_uploaded == 100
    assert seen[-1].percentage == 10.0


def test_speed_and_eta_follow_the_bytes() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock=clock, min_interval=0.0, speed_window=1.0)
    tracker.create_task("t", 10_000_000)
    for i in range(1, 21):
        clock.t = i * 0.1
        p = tracker.update_progress("t", bytes_uploaded=i * 100_000)  # 1 MB/s
    assert abs(p.upload_speed - 1_000_000) < 50_000
    assert p.estimated_seconds is not None
    assert 7.0 < p.estimated_seconds < 9.0


def test_complete_reports_100_percent_and_the_uri() -> None:
    tracker = ProgressTracker(clock=Clock())
    tracker.create_task("t", 10, 1)
    p = tracker.complete_task("t", "http://x/files/abc")
    assert p.percentage == 100.0 and p.stage == "complete" and p.file_uri == "http://x/files/abc"
    assert tracker.get_task("t") == p


def test_ndjson_and_sse_carry_the_streaming_progress_fields() -> None:
    tracker = ProgressTracker(clock=Clock())
    p = tracker.create_task("upload_1", 50, 2)
    line = to_ndjson(p)
    assert line.endswith("\n") and "\n" not in line[:-1]
    data = json.loads(line)
    for key in STREAMING_PROGRESS_FIELDS:
        assert key in data
    assert to_sse(p).startswith("event: progress\ndata: {")
