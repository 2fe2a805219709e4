"""Expiration: unfinished uploads expire (410), finished ones do not, and the sweep removes
expired uploads with their bytes. Time moves only when the test moves it."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.waits import within
from upwell.protocols.tus import parse_expires
from upwell.server.ids import new_upload_id
from upwell.server.keys import UPLOADS

from .conftest import TUS, FakeClock, MakeClient, create_upload, patch

Client = TestClient[Any, Any]


async def test_upload_expires_is_expiry_after_the_last_write(
    make_client: MakeClient, fake_clock: FakeClock
) -> None:
    client = await make_client(expiry=timedelta(hours=1))
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    assert parse_expires(resp.headers["Upload-Expires"]) == fake_clock.wall + timedelta(hours=1)
    path = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    fake_clock.advance(1800)
    resp = await patch(client, path, 0, b"abc")
    assert parse_expires(resp.headers["Upload-Expires"]) == fake_clock.wall + timedelta(hours=1)
    resp = await client.head(path, headers=TUS)
    assert parse_expires(resp.headers["Upload-Expires"]) == fake_clock.wall + timedelta(hours=1)


async def test_expired_unfinished_upload_is_410(
    make_client: MakeClient, fake_clock: FakeClock
) -> None:
    client = await make_client(expiry=timedelta(hours=1))
    path = await create_upload(client, 10)
    fake_clock.advance(3601)
    assert (await client.head(path, headers=TUS)).status == 410
    resp = await patch(client, path, 0, b"abc")
    assert resp.status == 410
    assert "expired" in await resp.text()
    assert (await client.get(path)).status == 410


async def test_finished_upload_never_expires(
    make_client: MakeClient, fake_clock: FakeClock, data_dir: Path
) -> None:
    client = await make_client(expiry=timedelta(hours=1))
    path = await create_upload(client, 3)
    resp = await patch(client, path, 0, b"abc")
    assert "Upload-Expires" not in resp.headers
    fake_clock.advance(10 * 3600)
    assert await client.app[UPLOADS].purge_expired() == 0
    resp = await client.head(path, headers=TUS)
    assert resp.status == 200
    assert "Upload-Expires" not in resp.headers
    assert await (await client.get(path)).read() == b"abc"


async def test_purge_removes_expired_uploads_with_their_bytes(
    make_client: MakeClient, fake_clock: FakeClock, data_dir: Path
) -> None:
    client = await make_client(expiry=timedelta(hours=1))
    old = await create_upload(client, 10)
    await patch(client, old, 0, b"abc")
    fake_clock.advance(3000)
    young = await create_upload(client, 10)
    fake_clock.advance(1000)
    assert await client.app[UPLOADS].purge_expired() == 1
    assert (await client.head(old, headers=TUS)).status == 404
    assert not (data_dir / "files" / old.rsplit("/", 1)[1]).exists()
    assert (await client.head(young, headers=TUS)).status == 200
    assert (data_dir / "files" / young.rsplit("/", 1)[1]).exists()


async def test_the_sweep_runs_every_cleanup_interval(
    make_client: MakeClient, fake_clock: FakeClock, data_dir: Path
) -> None:
    client = await make_client(expiry=timedelta(hours=1), cleanup_interval=600)
    await within(fake_clock.sleeping.wait(), "the start-up sweep to end")
    path = await create_upload(client, 10)
    fake_clock.advance(3601)
    fake_clock.wake()
    await within(fake_clock.sleeping.wait(), "one more sweep to end")
    assert (await client.head(path, headers=TUS)).status == 404
    assert list((data_dir / "files").iterdir()) == []


async def test_the_sweep_removes_bytes_no_record_names_once_they_are_old(
    make_client: MakeClient, data_dir: Path
) -> None:
    """A crash between writing an upload's bytes and recording it leaves bytes no client can
    reach; they go once untouched for the grace period, and nothing with a record ever does."""
    client = await make_client(expiry=timedelta(hours=1))
    kept = await create_upload(client, 3)
    await patch(client, kept, 0, b"abc")
    files = data_dir / "files"
    stray_file, stray_parts, stray_staging, fresh = (new_upload_id() for _ in range(4))
    (files / stray_file).write_bytes(b"left by a crash")
    (files / f"{stray_parts}.parts").mkdir()
    (files / f"{stray_parts}.parts" / "000000").write_bytes(b"part")
    (files / f"{stray_staging}.parts.tmp").mkdir()
    (files / fresh).write_bytes(b"a create in progress")
    (files / "README.txt").write_bytes(b"not an upload: never touched")
    # File ages are real (the file system dated them): make the strays two hours old.
    two_hours_ago = time.time() - 7200
    for name in (stray_file, f"{stray_parts}.parts", f"{stray_staging}.parts.tmp", "README.txt"):
        os.utime(files / name, (two_hours_ago, two_hours_ago))

    assert await client.app[UPLOADS].purge_strays(timedelta(hours=1)) == 3

    assert sorted(p.name for p in files.iterdir()) == sorted(
        [kept.rsplit("/", 1)[1], fresh, "README.txt"]
    )
    assert await (await client.get(kept)).read() == b"abc"
    assert await client.app[UPLOADS].purge_strays(timedelta(hours=1)) == 0


async def test_the_sweep_never_removes_old_uploads_that_have_a_record(
    make_client: MakeClient, data_dir: Path
) -> None:
    """Finished and partial uploads untouched for longer than the grace period are candidates
    by age; their records must keep them."""
    client = await make_client(expiry=timedelta(days=7))
    finished = await create_upload(client, 3)
    await patch(client, finished, 0, b"abc")
    partial = await create_upload(client, 10)
    await patch(client, partial, 0, b"half")
    part = await create_upload(client, 2, **{"Upload-Concat": "partial"})
    await patch(client, part, 0, b"xy")
    resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{part}"})
    assert resp.status == 201
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    files = data_dir / "files"
    two_hours_ago = time.time() - 7200
    for entry in files.iterdir():
        os.utime(entry, (two_hours_ago, two_hours_ago))
    uploads = client.app[UPLOADS]
    assert len(await uploads._storage.untouched_since(datetime.now(UTC) - timedelta(hours=1))) == 4

    assert await uploads.purge_strays(timedelta(hours=1)) == 0

    for path, body in ((finished, b"abc"), (partial, b"half"), (part, b"xy"), (final, b"xy")):
        assert await (await client.get(path)).read() == body, path
    assert (await client.head(partial, headers=TUS)).headers["Upload-Offset"] == "4"
