"""The stream control and request sizer, driven by a model of a link instead of sockets.

The model: each stream moves at most `per_stream` bytes/s and all together at most `link`;
a fake clock advances in small steps and the controller sees the bytes that went out.
"""

from __future__ import annotations

import pytest

from upwell.engine.adaptive import IDLE_SHARE, RequestSizer, StreamControl

MB = 1e6


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(
    control: StreamControl, clock: Clock, per_stream: float, link: float, seconds: float
) -> list[int]:
    """Run the model for `seconds`; returns the stream count at every step."""
    sent = 0.0
    seen = []
    step = 0.01
    while clock.now < seconds:
        clock.now += step
        sent += min(link, control.target * per_stream) * step
        seen.append(control.sample(int(sent)))
    return seen


@pytest.mark.parametrize(
    ("per_stream", "link", "cap", "need"),
    [
        (25 * MB, 100 * MB, 8, 4),  # the WAN shape: four connections fill the link
        (10 * MB, 100 * MB, 16, 10),  # more streams than the start, up to the link
        (25 * MB, 100 * MB, 3, 3),  # the cap holds even when more would help
    ],
)
def test_streams_grow_while_the_rate_rises_and_stop_at_the_link(
    per_stream: float, link: float, cap: int, need: int
) -> None:
    clock = Clock()
    control = StreamControl(cap, clock=clock)
    seen = drive(control, clock, per_stream, link, 20.0)
    assert max(seen) <= cap
    assert control.target >= need
    assert control.target <= max(need + 1, 1) or control.target == cap
    assert control.mode == "hold"


def test_streams_do_not_multiply_when_more_do_not_help() -> None:
    """Loopback: one stream already fills the path, so the start count is kept."""
    clock = Clock()
    control = StreamControl(8, clock=clock)
    seen = drive(control, clock, 500 * MB, 500 * MB, 10.0)
    assert control.target == 4
    assert max(seen) <= 8
    assert control.mode == "hold"


def test_an_error_halves_the_streams_and_probing_goes_on_from_there() -> None:
    clock = Clock()
    control = StreamControl(8, clock=clock)
    drive(control, clock, 10 * MB, 100 * MB, 10.0)
    before = control.target
    assert control.error() == before // 2
    drive(control, clock, 10 * MB, 100 * MB, 30.0)
    assert control.target > before // 2  # additive increase found the room again


def test_a_pinned_count_never_moves() -> None:
    clock = Clock()
    control = StreamControl(3, adaptive=False, clock=clock)
    assert set(drive(control, clock, 1 * MB, 100 * MB, 5.0)) == {3}
    assert control.error() == 3


def test_requests_grow_until_idle_time_is_a_small_share() -> None:
    chunk = 8 * 1024 * 1024
    sizer = RequestSizer(chunk)
    assert sizer.chunks(40) == 1  # nothing measured yet: one chunk
    rate, idle = 25 * MB, 0.05
    for _ in range(5):
        n = sizer.chunks(40)
        size = n * chunk
        sizer.observe(size, size / rate, idle)
    n = sizer.chunks(40)
    size = n * chunk
    # The idle share of a request of this size, at the model's rate, is under the target...
    assert idle / (size / rate) <= IDLE_SHARE * 1.5
    # ...and one chunk fewer would not have been enough (it is not oversized).
    assert idle / ((n - 1) * chunk / rate) > IDLE_SHARE * 0.8 or n == 1
    assert sizer.chunks(2) <= 2


def test_pinned_chunk_size_sends_one_chunk_per_request() -> None:
    sizer = RequestSizer(1024, adaptive=False)
    sizer.observe(1024, 0.001, 1.0)
    assert sizer.chunks(100) == 1


def test_requests_stay_within_the_maximum() -> None:
    sizer = RequestSizer(1024 * 1024, max_request=4 * 1024 * 1024)
    sizer.observe(1024 * 1024, 0.01, 1.0)
    assert sizer.chunks(100) == 4
