"""MemoryLocker: one writer per upload; a quiet one is stopped and replaced."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.waits import within
from upwell.server.locks import MemoryLocker, UploadLockedError


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_a_held_upload_refuses_a_second_holder_with_423() -> None:
    locker = MemoryLocker(5.0, Clock())
    async with locker.hold("u", lambda: None):
        with pytest.raises(UploadLockedError) as refused:
            async with locker.hold("u", lambda: None):
                pass
        assert refused.value.status == 423
        async with locker.hold("other", lambda: None):
            pass
    async with locker.hold("u", lambda: None):
        pass


async def test_a_quiet_holder_is_stopped_and_the_newcomer_waits_for_its_release() -> None:
    clock = Clock()
    locker = MemoryLocker(5.0, clock)
    stopped = asyncio.Event()
    held = asyncio.Event()
    order: list[str] = []

    async def old_writer() -> None:
        async with locker.hold("u", stopped.set) as lease:
            lease.touch(10)
            held.set()
            await within(stopped.wait(), "stopped to be set")
            order.append("old released")

    old = asyncio.create_task(old_writer())
    await within(held.wait(), "held to be set")
    clock.t = 5.0
    async with locker.hold("u", lambda: None):
        order.append("new acquired")
    await old
    assert order == ["old released", "new acquired"]


async def test_touching_keeps_a_holder_alive() -> None:
    clock = Clock()
    locker = MemoryLocker(5.0, clock)
    async with locker.hold("u", lambda: None) as lease:
        clock.t = 4.0
        lease.touch(1)
        clock.t = 8.0
        with pytest.raises(UploadLockedError):
            async with locker.hold("u", lambda: None):
                pass


async def test_of_two_takeovers_one_wins_and_the_other_gets_423() -> None:
    clock = Clock()
    locker = MemoryLocker(5.0, clock)
    stop = asyncio.Event()
    held = asyncio.Event()
    winner_holds = asyncio.Event()
    finish = asyncio.Event()

    async def old_writer() -> None:
        async with locker.hold("u", stop.set):
            held.set()
            await within(stop.wait(), "stop to be set")

    async def newcomer() -> str:
        try:
            async with locker.hold("u", lambda: None):
                winner_holds.set()
                await within(finish.wait(), "finish to be set")
                return "won"
        except UploadLockedError:
            return "423"

    old = asyncio.create_task(old_writer())
    await within(held.wait(), "held to be set")
    clock.t = 10.0
    contenders = [asyncio.create_task(newcomer()) for _ in range(2)]
    await within(winner_holds.wait(), "winner holds to be set")
    await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
    finish.set()
    results = sorted(await asyncio.gather(*contenders))
    await old
    assert results == ["423", "won"]


async def test_a_newcomer_waits_briefly_for_a_holder_about_to_release() -> None:
    locker = MemoryLocker(5.0, Clock(), wait=30.0)
    release = asyncio.Event()
    held = asyncio.Event()

    async def old_writer() -> None:
        async with locker.hold("u", lambda: None):
            held.set()
            await within(release.wait(), "release to be set")

    old = asyncio.create_task(old_writer())
    await within(held.wait(), "held to be set")
    newcomer = asyncio.create_task(_hold_once(locker))
    await asyncio.sleep(0)  # let the newcomer start waiting on the held lock
    assert not newcomer.done()
    release.set()
    assert await newcomer == "held"
    await old


async def test_a_termination_preempts_a_live_holder() -> None:
    locker = MemoryLocker(5.0, Clock())
    stop = asyncio.Event()
    held = asyncio.Event()

    async def old_writer() -> None:
        async with locker.hold("u", stop.set):
            held.set()
            await within(stop.wait(), "stop to be set")

    old = asyncio.create_task(old_writer())
    await within(held.wait(), "held to be set")
    async with locker.hold("u", lambda: None, preempt=True):
        assert stop.is_set()
    await old


async def _hold_once(locker: MemoryLocker) -> str:
    async with locker.hold("u", lambda: None):
        return "held"
