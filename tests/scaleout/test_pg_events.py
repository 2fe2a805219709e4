"""PostgresEventBus: two buses on one database stand for two replicas. Events published on
either reach subscribers on both in one id order; a big event goes by its id and is read
back; a reconnect replays from the table; subscribers see only their owner's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from upwell.server.gateway.events import Event
from upwell.server.gateway.pg_events import NOTIFY_LIMIT, PostgresEventBus
from upwell.server.state.postgres import connect_pool


@pytest.fixture
async def buses(postgres_dsn: str) -> AsyncIterator[tuple[PostgresEventBus, PostgresEventBus]]:
    pool = await connect_pool(postgres_dsn)
    a = await PostgresEventBus.open(postgres_dsn, pool)
    b = await PostgresEventBus.open(postgres_dsn, pool)
    yield a, b
    await a.close()
    await b.close()
    await pool.close()


async def take(subscription: object, count: int) -> list[Event]:
    got = []
    for _ in range(count):
        event = await subscription.next(10.0)  # type: ignore[attr-defined]
        assert event is not None, f"only {len(got)} of {count} events arrived"
        got.append(event)
    return got


async def test_events_of_both_replicas_reach_both_in_one_order(
    buses: tuple[PostgresEventBus, PostgresEventBus],
) -> None:
    a, b = buses
    async with a.subscribe("ann") as on_a, b.subscribe("ann") as on_b:
        published = await asyncio.gather(
            *(
                (a if n % 2 else b).publish("ann", f"u{n % 3}", "progress", {"n": n})
                for n in range(40)
            )
        )
        await b.publish("bob", "u9", "record", {"secret": True})  # another owner's
        seen_a, seen_b = await take(on_a, 40), await take(on_b, 40)
        assert await on_a.next(0.2) is None  # nothing of bob's
    assert [e.id for e in seen_a] == [e.id for e in seen_b]
    assert [e.id for e in seen_a] == sorted(e.id for e in published)
    assert {e.data["n"] for e in seen_b} == set(range(40))
    assert await a.last_id() == max(e.id for e in published) + 1


async def test_a_big_event_is_sent_by_id_and_read_back(
    buses: tuple[PostgresEventBus, PostgresEventBus],
) -> None:
    a, b = buses
    big = {"metadata": "x" * (NOTIFY_LIMIT * 2)}
    async with b.subscribe("ann", "u1") as sub:
        sent = await a.publish("ann", "u1", "record", big)
        small = await a.publish("ann", "u1", "progress", {"n": 1})
        got = await take(sub, 2)
    assert [(e.id, e.data) for e in got] == [(sent.id, big), (small.id, {"n": 1})]


async def test_a_reconnect_replays_what_another_replica_published(
    buses: tuple[PostgresEventBus, PostgresEventBus],
) -> None:
    a, b = buses
    first = await a.publish("ann", "u1", "progress", {"n": 1})
    missed = [await a.publish("ann", "u1", "progress", {"n": n}) for n in (2, 3)]
    await a.publish("ann", "u2", "progress", {"n": 4})  # another upload's
    async with b.subscribe("ann", "u1", after=first.id) as sub:
        replayed = await take(sub, 2)
        live = await a.publish("ann", "u1", "record", {"n": 5})
        (after,) = await take(sub, 1)
    assert [e.id for e in replayed] == [e.id for e in missed]
    assert after.id == live.id


async def test_a_bus_that_lost_its_listener_listens_again(
    buses: tuple[PostgresEventBus, PostgresEventBus], postgres_dsn: str
) -> None:
    import asyncpg

    a, b = buses
    admin = await asyncpg.connect(postgres_dsn)
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert len(killed) == 2  # both replicas' listeners
    finally:
        await admin.close()
    async with b.subscribe("ann") as sub:
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # each publish until one arrives: the listener is back
            await a.publish("ann", "u1", "progress", {"n": 1})
            if await sub.next(0.2) is not None:
                break
            assert asyncio.get_running_loop().time() < deadline, "never listened again"
