"""The catalog methods of the state stores (SQLite, PostgreSQL): status, forwards, owners'
pages, dedupe lookup, usage, and an older SQLite file gaining the catalog columns."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.services import postgres_database
from upwell.server.ids import new_upload_id
from upwell.server.state import Forward, SQLiteStateStore, StateStore, Upload

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def upload(**changes: object) -> Upload:
    base = Upload(
        id=new_upload_id(), length=10, offset=0, metadata="", created=T0, expires=T0, owner="ann"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
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


async def test_status_moves_from_receiving_to_stored_then_by_forwards(
    state: StateStore,
) -> None:
    u = upload()
    await state.create(u)
    assert (await state.record(u.id)).status == "receiving"  # type: ignore[union-attr]
    await state.update(replace(u, offset=10, expires=None))
    assert (await state.record(u.id)).status == "stored"  # type: ignore[union-attr]
    await state.save_forward(Forward(u.id, "b"), "forwarding")
    await state.save_forward(Forward(u.id, "a"), "forwarding")
    await state.save_forward(Forward(u.id, "b", "done", 2, None, "files/x", "uri"), "forwarding")
    record = await state.record(u.id)
    assert record is not None and record.status == "forwarding"
    assert [f.target for f in record.forwards] == ["b", "a"]  # in the order first journaled
    assert record.forwards[0] == Forward(u.id, "b", "done", 2, None, "files/x", "uri")
    # A later update of the upload (its digest) leaves the forward status alone.
    await state.update(replace(u, offset=10, expires=None, sha256="ab" * 32))
    assert (await state.record(u.id)).status == "forwarding"  # type: ignore[union-attr]


async def test_records_are_the_owners_newest_first(state: StateStore) -> None:
    mine = [upload(created=T0 + timedelta(seconds=n)) for n in range(3)]
    for u in [*mine, upload(owner="bob")]:
        await state.create(u)
    got = await state.records("ann", limit=2)
    assert [r.upload.id for r in got] == [mine[2].id, mine[1].id]
    rest = await state.records("ann", before=(got[-1].upload.created, got[-1].upload.id))
    assert [r.upload.id for r in rest] == [mine[0].id]
    assert [r.upload.owner for r in await state.records("bob")] == ["bob"]
    assert await state.records("ann", status="stored") == []


async def test_forwarded_finds_a_done_forward_of_the_same_bytes(state: StateStore) -> None:
    first, second = upload(offset=10, sha256="cd" * 32), upload(offset=10, sha256="cd" * 32)
    for u in (first, second):
        await state.create(u)
    await state.save_forward(Forward(first.id, "gemini", "running"), "forwarding")
    assert await state.forwarded("cd" * 32, "gemini") is None
    done = Forward(first.id, "gemini", "done", 1, None, "files/abc", "https://x/files/abc")
    await state.save_forward(done, "forwarded")
    assert await state.forwarded("cd" * 32, "gemini") == done
    assert await state.forwarded("cd" * 32, "other") is None
    assert await state.forwarded("ef" * 32, "gemini") is None


async def test_unfinished_forwards_and_delete_cascades(state: StateStore) -> None:
    u = upload(offset=10)
    await state.create(u)
    await state.save_forward(Forward(u.id, "a", "running", 1), "forwarding")
    await state.save_forward(Forward(u.id, "b", "done", 1), "forwarding")
    assert [f.target for f in await state.unfinished_forwards()] == ["a"]
    assert await state.delete(u.id)
    assert await state.unfinished_forwards() == []
    assert await state.record(u.id) is None


async def test_usage_counts_unfinished_uploads_and_bytes(state: StateStore) -> None:
    await state.create(upload(offset=10))
    await state.create(upload(length=100, offset=40))
    await state.create(upload(owner="bob", offset=10))
    usage = await state.usage("ann")
    assert (usage.unfinished, usage.stored_bytes) == (1, 50)
    assert (await state.usage("nobody")).stored_bytes == 0


async def test_an_older_file_gains_owner_and_status(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE uploads (id TEXT PRIMARY KEY, upload_length INTEGER,"
            " upload_offset INTEGER NOT NULL, metadata TEXT NOT NULL, created REAL NOT NULL,"
            " expires REAL, concat TEXT, parts TEXT NOT NULL, completed INTEGER NOT NULL,"
            " sha256 TEXT);"
        )
        db.execute(
            "INSERT INTO uploads VALUES (?, 5, 5, '', ?, NULL, NULL, '', 1, NULL)",
            ("a" * 32, T0.timestamp()),
        )
    store = await SQLiteStateStore.open(path)
    try:
        record = await store.record("a" * 32)
        assert record is not None
        assert (record.upload.owner, record.status) == ("anonymous", "stored")
    finally:
        await store.close()
