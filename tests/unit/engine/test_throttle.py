import asyncio

import pytest

from upwell.engine.throttle import AdaptiveBandwidthThrottle, BandwidthThrottle


class FakeTime:
    """A clock that only moves when somebody sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.mark.parametrize("rate", [2_000_000, 10_000_000, 50_000_000])
async def test_rate_is_held_within_one_percent_over_five_seconds(rate: int) -> None:
    t = FakeTime()
    throttle = BandwidthThrottle(rate, clock=t.clock, sleep=t.sleep)
    sent = 0
    while sent < rate * 5:
        n = throttle.slice_size(1 << 20)
        await throttle.consume(n)
        sent += n
    assert sent / t.now == pytest.approx(rate, rel=0.01)


async def test_bucket_starts_empty_so_there_is_no_initial_burst() -> None:
    t = FakeTime()
    throttle = BandwidthThrottle(1000, clock=t.clock, sleep=t.sleep)
    await throttle.consume(500)
    assert t.now == pytest.approx(0.5)


async def test_idle_time_builds_a_burst_of_at_most_two_seconds() -> None:
    t = FakeTime()
    throttle = BandwidthThrottle(1000, clock=t.clock, sleep=t.sleep)
    t.now += 60  # idle for a minute
    await throttle.consume(2000)
    assert t.now == pytest.approx(60.0)
    await throttle.consume(1000)
    assert t.now == pytest.approx(61.0)


async def test_rate_can_change_while_running() -> None:
    t = FakeTime()
    throttle = BandwidthThrottle(1000, clock=t.clock, sleep=t.sleep)
    await throttle.consume(1000)
    throttle.set_rate(4000)
    start = t.now
    await throttle.consume(4000)
    assert t.now - start == pytest.approx(1.0)


async def test_concurrent_streams_share_one_rate() -> None:
    t = FakeTime()
    throttle = BandwidthThrottle(10_000, clock=t.clock, sleep=t.sleep)

    async def stream() -> None:
        for _ in range(50):
            await throttle.consume(1000)

    await asyncio.gather(*(stream() for _ in range(4)))
    assert 200_000 / t.now == pytest.approx(10_000, rel=0.01)


def test_adaptive_throttle_backs_off_and_recovers_to_its_ceiling() -> None:
    throttle = AdaptiveBandwidthThrottle(1000)
    throttle.record_failure(503)
    assert throttle.rate_limit == 800
    throttle.record_failure(404)  # not a sign of overload
    assert throttle.rate_limit == 800
    for _ in range(100):
        throttle.record_success()
    assert throttle.rate_limit == 1000


def test_slices_are_small_at_low_rates() -> None:
    assert BandwidthThrottle(2_000_000).slice_size(1 << 20) == 100_000
    assert BandwidthThrottle(500_000_000).slice_size(1 << 20) == 1 << 20
