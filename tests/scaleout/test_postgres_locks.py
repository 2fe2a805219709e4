"""PostgresLocker: two lockers on one database stand for two replicas. One writer per upload
across them, a quiet writer stopped from the other side, a lock that dies with its holder's
connection, forward claims and a one-at-a-time job; and migrations run by replicas at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from upwell.server.ids import new_upload_id
from upwell.server.locks import UploadLockedError
from upwell.server.postgres_locks import PostgresLocker
from upwell.server.state.postgres import MIGRATIONS, connect_pool, migrate

STALE = 0.4  # seconds a writer may be quiet before it can be taken over

MakeLocker = Callable[..., Awaitable[PostgresLocker]]


@pytest.fixture
async def make_locker(postgres_dsn: str) -> AsyncIterator[MakeLocker]:
    pool = await connect_pool(postgres_dsn)
    lockers: list[PostgresLocker] = []

    async def make(stale: float = STALE, wait: float = 0.0) -> PostgresLocker:
        locker = await PostgresLocker.open(postgres_dsn, pool, stale, wait)
        lockers.append(locker)
        return locker

    yield make
    for locker in lockers:
        await locker.close()
    await pool.close()


def never() -> None:
    raise AssertionError("stopped without cause")


async def test_a_held_upload_refuses_a_writer_on_another_replica(make_locker: MakeLocker) -> None:
    a, b = await make_locker(stale=60), await make_locker(stale=60)
    upload_id = new_upload_id()
    async with a.hold(upload_id, never) as lease:
        lease.touch(1)
        with pytest.raises(UploadLockedError) as refused:
            async with b.hold(upload_id, never):
                pass
        assert refused.value.status == 423
    async with b.hold(upload_id, never):  # released: the other replica may write now
        assert b.holding(upload_id)


async def test_a_newcomer_waits_briefly_for_a_release_on_another_replica(
    make_locker: MakeLocker,
) -> None:
    a, b = await make_locker(stale=60), await make_locker(stale=60, wait=10)
    upload_id = new_upload_id()
    held = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with a.hold(upload_id, never):
            held.set()
            await release.wait()

    task = asyncio.create_task(first())
    await held.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_soon(release.set)
    async with b.hold(upload_id, never):  # woken by the release's NOTIFY, not a 423
        assert loop.time() - started < 10
    await task


async def test_a_quiet_writer_is_stopped_from_another_replica(make_locker: MakeLocker) -> None:
    a, b = await make_locker(), await make_locker()
    upload_id = new_upload_id()
    stopped = asyncio.Event()
    held = asyncio.Event()

    async def quiet_writer() -> None:
        async with a.hold(upload_id, stopped.set) as lease:
            lease.touch(100)
            held.set()
            await stopped.wait()  # what a request does when stop() cuts its body

    task = asyncio.create_task(quiet_writer())
    await held.wait()
    with pytest.raises(UploadLockedError):  # still fresh: refused
        async with b.hold(upload_id, never):
            pass
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            async with b.hold(upload_id, never):
                break
        except UploadLockedError:
            assert asyncio.get_running_loop().time() < deadline, "never taken over"
            await asyncio.sleep(0.02)
    assert stopped.is_set()
    await task


async def test_a_termination_preempts_a_live_writer_on_another_replica(
    make_locker: MakeLocker,
) -> None:
    a, b = await make_locker(stale=60), await make_locker(stale=60)
    upload_id = new_upload_id()
    stopped = asyncio.Event()
    held = asyncio.Event()

    async def writer() -> None:
        async with a.hold(upload_id, stopped.set):
            held.set()
            await stopped.wait()

    task = asyncio.create_task(writer())
    await held.wait()
    async with b.hold(upload_id, never, preempt=True):
        assert stopped.is_set()
    await task


async def test_the_lock_dies_with_its_holders_connection(
    make_locker: MakeLocker, postgres_dsn: str
) -> None:
    a, b = await make_locker(stale=60), await make_locker(stale=60)
    upload_id = new_upload_id()
    stopped = asyncio.Event()
    async with a.hold(upload_id, stopped.set):
        # The replica's connections vanish, as when its process is killed (only a's: a
        # pattern on the last query would catch b's idle connections too).
        pids = [c.get_server_pid() for c in a._conns if c is not None]
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        finally:
            await admin.close()
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                async with b.hold(upload_id, never):
                    break
            except UploadLockedError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
        assert stopped.is_set()  # the holder was told it lost the lock


async def test_forward_claims_and_jobs_belong_to_one_replica_at_a_time(
    make_locker: MakeLocker,
) -> None:
    a, b = await make_locker(), await make_locker()
    upload_id = new_upload_id()
    async with a.claim(upload_id) as mine:
        assert mine
        async with a.claim(upload_id) as again:  # another task of the same replica
            assert again
        async with b.claim(upload_id) as theirs:
            assert not theirs
    async with b.claim(upload_id) as theirs:
        assert theirs
    async with a.exclusive("sweep") as first, b.exclusive("sweep") as second:
        assert (first, second) == (True, False)


async def test_replicas_starting_at_once_migrate_once(postgres_dsn: str) -> None:
    connections = [await asyncpg.connect(postgres_dsn) for _ in range(3)]
    try:
        versions = await asyncio.gather(*(migrate(c) for c in connections))
        assert versions == [len(MIGRATIONS)] * 3
        rows = await connections[0].fetch("SELECT version FROM upwell_schema")
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
        assert await migrate(connections[0]) == len(MIGRATIONS)  # and again: nothing to do
    finally:
        for c in connections:
            await c.close()
