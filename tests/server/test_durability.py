"""An acknowledged offset is durable: the upload's file is fsynced, and its record committed
with SQLite's synchronous=FULL, before the server answers. Behaviour alone cannot show this
(only a power cut would), so the tests watch the syncs themselves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from upwell.server.state import SQLiteStateStore, Upload

from .conftest import create_upload, patch

Client = TestClient[Any, Any]


class SyncLog:
    """os.fsync, still syncing, recording which file each call synced."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            real(fd)
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = f"fd {fd}"
            self.events.append(("fsync", target))

        real_update = SQLiteStateStore.update

        async def update(store: SQLiteStateStore, upload: Upload) -> None:
            await real_update(store, upload)
            self.events.append(("commit", f"{upload.id} offset {upload.offset}"))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(SQLiteStateStore, "update", update)

    def mark(self, what: str) -> int:
        self.events.append(("answer", what))
        return len(self.events) - 1

    def index(self, kind: str, target: str) -> int:
        for i, (k, t) in enumerate(self.events):
            if k == kind and t == target:
                return i
        raise AssertionError(f"no {kind} of {target} in {self.events}")


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> SyncLog:
    return SyncLog(monkeypatch)


async def test_a_patch_is_fsynced_then_committed_before_it_is_answered(
    client: Client, data_dir: Path, syncs: SyncLog
) -> None:
    path = await create_upload(client, 6)
    upload_id = path.rsplit("/", 1)[1]
    file = str((data_dir / "files" / upload_id).resolve())
    del syncs.events[:]

    resp = await patch(client, path, 0, b"abc")
    answered = syncs.mark("PATCH 204")
    assert resp.status == 204

    synced = syncs.index("fsync", file)
    committed = syncs.index("commit", f"{upload_id} offset 3")
    assert synced < committed < answered, syncs.events


async def test_creation_with_upload_is_fsynced_before_it_is_answered(
    client: Client, data_dir: Path, syncs: SyncLog
) -> None:
    resp = await client.post(
        "/files/",
        data=b"hello",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "5",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    answered = syncs.mark("POST 201")
    assert resp.status == 201
    upload_id = resp.headers["Location"].rsplit("/", 1)[1]
    synced = syncs.index("fsync", str((data_dir / "files" / upload_id).resolve()))
    committed = syncs.index("commit", f"{upload_id} offset 5")
    assert synced < committed < answered, syncs.events


async def test_the_state_store_commits_with_synchronous_full_in_wal_mode(tmp_path: Path) -> None:
    store = await SQLiteStateStore.open(tmp_path / "state.sqlite3")
    try:
        async with store._db.execute("PRAGMA synchronous") as cursor:
            assert await cursor.fetchone() == (2,)  # FULL: a commit waits for its fsync
        async with store._db.execute("PRAGMA journal_mode") as cursor:
            assert await cursor.fetchone() == ("wal",)
    finally:
        await store.close()
