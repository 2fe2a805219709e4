"""Progress pacing on a fake clock: bounds on rate, never decreasing, the last == total."""

from __future__ import annotations

import asyncio

from upwell.mcp.progress import ProgressPacer, paced_notifications
from upwell.progress import UploadProgress


def event(n: int, total: int = 1000) -> UploadProgress:
    return UploadProgress(0.0, "uploading", "", n, total, 0, 1)


def test_pacer_sends_at_most_every_min_gap_and_at_least_every_max_gap() -> None:
    pacer = ProgressPacer("f.bin", 1000, min_gap=0.4, max_gap=1.0)
    assert pacer.due(0.0) is not None  # the first goes out at once
    pacer.observe(event(100))
    assert pacer.due(0.2) is None  # too soon
    sent = pacer.due(0.4)
    assert sent is not None and sent.progress == 100 and sent.total == 1000
    assert pacer.due(0.9) is None  # nothing new, under max_gap
    beat = pacer.due(1.5)
    assert beat is not None and beat.progress == 100  # a heartbeat while nothing moved


def test_pacer_never_goes_back_and_never_passes_total() -> None:
    pacer = ProgressPacer("f.bin", 1000)
    pacer.observe(event(600))
    pacer.observe(event(200))  # a retry re-counting a chunk
    first = pacer.due(0.0)
    assert first is not None and first.progress == 600
    pacer.observe(event(5000))
    second = pacer.due(10.0)
    assert second is not None and second.progress == 1000
    final = pacer.final(10.1)
    assert final.progress == final.total == 1000 and final.message.startswith("Uploaded f.bin")


async def test_notifications_stop_when_the_block_is_left_and_finish_sends_total() -> None:
    sent: list[tuple[float, float, str]] = []
    clock = [0.0]
    ticks = asyncio.Queue[None]()

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        ticks.put_nowait(None)
        await asyncio.sleep(0)

    async def send(progress: float, total: float, message: str) -> None:
        sent.append((progress, total, message))

    pacer = ProgressPacer("f.bin", 1000, min_gap=0.4, max_gap=1.0)
    async with paced_notifications(pacer, send, clock=lambda: clock[0], sleep=sleep) as finish:
        for n in (100, 300, 700):
            pacer.observe(event(n))
            await ticks.get()
        await finish()
    count = len(sent)
    assert [p for p, _, _ in sent] == sorted(p for p, _, _ in sent)
    assert sent[-1][0] == 1000 and all(t == 1000 for _, t, _ in sent)
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(sent) == count  # nothing after the block
