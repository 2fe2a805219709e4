import random

import pytest

from upwell.engine.retry import RetryPolicy, call_with_retries
from upwell.errors import TargetError


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_retryable_errors_are_retried_until_success() -> None:
    sleep = FakeSleep()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TargetError("503", status=503, retryable=True)
        return "ok"

    assert await call_with_retries(flaky, RetryPolicy(max_retries=3), sleep=sleep) == "ok"
    assert calls == 3
    assert len(sleep.waits) == 2


async def test_non_retryable_errors_fail_at_once() -> None:
    sleep = FakeSleep()

    async def denied() -> None:
        raise TargetError("403", status=403, retryable=False)

    with pytest.raises(TargetError):
        await call_with_retries(denied, RetryPolicy(max_retries=5), sleep=sleep)
    assert sleep.waits == []


async def test_gives_up_after_max_retries() -> None:
    sleep = FakeSleep()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TargetError("down", retryable=True)

    with pytest.raises(TargetError):
        await call_with_retries(down, RetryPolicy(max_retries=2), sleep=sleep)
    assert calls == 3


async def test_retry_after_is_honoured() -> None:
    sleep = FakeSleep()
    calls = 0

    async def limited() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TargetError("429", status=429, retryable=True, retry_after=7.0)

    await call_with_retries(limited, RetryPolicy(), sleep=sleep)
    assert sleep.waits == [7.0]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        d = policy.delay(attempt, None, rng)
        assert ceiling / 2 <= d <= ceiling
