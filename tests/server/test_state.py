"""State stores (SQLite, PostgreSQL): upload records round-trip, persist, and expire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.services import postgres_database
from upwell.server.ids import new_upload_id
from upwell.server.state import SQLiteStateStore, StateStore, Upload

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def upload(**changes: object) -> Upload:
    base = Upload(
        id=new_upload_id(),
        length=100,
        offset=0,
        metadata="filename YS50eHQ=",
        created=T0,
        expires=T0 + timedelta(hours=1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the store under test keeps its records: an SQLite file, or a fresh database."""
    if request.param == "sqlite":
        yield str(tmp_path / "state.sqlite3")
    else:
        with postgres_database() as dsn:
            yield dsn


@pytest.fixture
async def state(state_location: str) -> AsyncIterator[StateStore]:
    store: StateStore
    if state_location.startswith("postgresql://"):
        from upwell.server.state.postgres import PostgresStateStore

        store = await PostgresStateStore.open(state_location)
    else:
        store = await SQLiteStateStore.open(Path(state_location))
    yield store
    await store.close()


async def test_records_round_trip(state: StateStore) -> None:
    records = [
        upload(),
        upload(length=None),
        upload(concat="partial"),
        upload(length=5, offset=5, expires=None, concat="final", parts=("a" * 32, "b" * 32)),
    ]
    for record in records:
        await state.create(record)
    for record in records:
        assert await state.get(record.id) == record
    assert await state.get(new_upload_id()) is None


async def test_update_stores_offset_length_and_completion(state: StateStore) -> None:
    record = upload(length=None)
    await state.create(record)
    done = replace(record, length=10, offset=10, expires=None, sha256="ab" * 32)
    await state.update(done)
    got = await state.get(record.id)
    assert got == done
    assert got is not None and got.completed


async def test_expired_lists_only_unfinished_uploads_past_expiry(state: StateStore) -> None:
    stale = upload()
    fresh = upload(expires=T0 + timedelta(hours=5))
    finished = upload(length=1, offset=1, expires=T0)
    for record in (stale, fresh, finished):
        await state.create(record)
    assert await state.expired(T0 + timedelta(hours=2)) == [stale.id]
    assert stale.expired(T0 + timedelta(hours=2))
    assert not finished.expired(T0 + timedelta(hours=2))


async def test_delete_forgets_the_record(state: StateStore) -> None:
    record = upload()
    await state.create(record)
    assert await state.delete(record.id)
    assert not await state.delete(record.id)
    assert await state.get(record.id) is None


async def test_records_persist_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    record = upload()
    first = await SQLiteStateStore.open(path)
    await first.create(record)
    await first.close()
    second = await SQLiteStateStore.open(path)
    try:
        assert await second.get(record.id) == record
    finally:
        await second.close()
