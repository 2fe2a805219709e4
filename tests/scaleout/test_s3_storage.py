"""S3ByteStore against a moto S3 server: what a crashed or rolled-back request left is ignored,
short tails wait in a pending object, sealing makes one object, concatenation mixes copied
and re-sent parts, and the sweep's helpers see strays and abort multipart uploads."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.services import S3Server
from upwell.server.ids import new_upload_id
from upwell.server.storage import Checksum
from upwell.server.storage.s3 import MIN_PART, S3ByteStore

MiB = 1024 * 1024


@pytest.fixture
async def store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3ByteStore]:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"store-{secrets.token_hex(4)}"
    s3_server.client().create_bucket(Bucket=bucket)
    opened = await S3ByteStore.open(f"s3://{bucket}/p")
    opened.part_size = MIN_PART  # the smallest S3 allows: more parts per test byte
    yield opened
    await opened.close()


def data(size: int, seed: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


async def append(store: S3ByteStore, upload_id: str, offset: int, body: bytes) -> int:
    writer = await store.open_writer(upload_id, offset)
    for start in range(0, len(body), MiB):
        await writer.write([body[start : start + MiB]])
    return (await writer.finish([])).kept


async def read_all(store: S3ByteStore, upload_id: str, length: int) -> bytes:
    await store.seal(upload_id, length)
    return b"".join([chunk async for chunk in store.read(upload_id, 0, length)])


async def test_appends_of_any_size_seal_into_one_object(store: S3ByteStore) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    body = data(13 * MiB + 5, 1)
    offset = 0
    for size in (100, 3 * MiB, 7 * MiB, 1, 3 * MiB - 96):  # tails, parts, and parts of tails
        assert await append(store, upload_id, offset, body[offset : offset + size]) == size
        offset += size
    assert offset == len(body)
    assert await read_all(store, upload_id, len(body)) == body
    await store.seal(upload_id, len(body))  # again: nothing to do
    got = b"".join([c async for c in store.read(upload_id, 5 * MiB, 6 * MiB + 3)])
    assert got == body[5 * MiB : 6 * MiB + 3]
    assert await store.sha256(upload_id) == hashlib.sha256(body).digest()


async def test_what_an_uncommitted_request_left_is_ignored(store: S3ByteStore) -> None:
    upload_id = new_upload_id()
    body = data(20 * MiB, 2)
    committed = 6 * MiB + 17  # one part and a pending tail
    assert await append(store, upload_id, 0, body[:committed]) == committed
    # A request that sent parts and a longer tail, then died before its offset was recorded.
    junk = data(12 * MiB, 3)
    assert await append(store, upload_id, committed, junk) == len(junk)
    # The next request starts from the committed offset, and only its bytes count.
    assert await append(store, upload_id, committed, body[committed:]) == len(body) - committed
    assert await read_all(store, upload_id, len(body)) == body


async def test_a_rolled_back_request_leaves_the_upload_as_it_was(store: S3ByteStore) -> None:
    upload_id = new_upload_id()
    body = data(9 * MiB, 4)
    assert await append(store, upload_id, 0, body[: 2 * MiB]) == 2 * MiB
    wrong = Checksum("sha256", hashlib.sha256(b"something else").digest())
    writer = await store.open_writer(upload_id, 2 * MiB, wrong)
    await writer.write([data(6 * MiB, 5)])  # a whole part goes out before the check fails
    appended = await writer.finish([])
    assert appended.checksum_mismatch and appended.kept == 0
    assert await append(store, upload_id, 2 * MiB, body[2 * MiB :]) == 7 * MiB
    assert await read_all(store, upload_id, len(body)) == body


async def test_concatenation_copies_big_parts_and_joins_small_ones(store: S3ByteStore) -> None:
    sizes = [MiB, 6 * MiB, 2 * MiB, 3 * MiB, 7 * MiB + 3, 10]
    parts = []
    for index, size in enumerate(sizes):
        part_id = new_upload_id()
        body = data(size, 10 + index)
        assert await append(store, part_id, 0, body) == size
        await store.seal(part_id, size)
        parts.append((part_id, body))
    final = new_upload_id()
    total = await store.concatenate(final, [p for p, _ in parts])
    assert total == sum(sizes)
    assert await read_all(store, final, total) == b"".join(b for _, b in parts)


async def test_an_empty_upload_seals_into_an_empty_object(store: S3ByteStore) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    assert await read_all(store, upload_id, 0) == b""
    assert await store.sha256(upload_id) == hashlib.sha256(b"").digest()


async def test_strays_are_listed_and_deleting_aborts_the_multipart_upload(
    store: S3ByteStore, s3_server: S3Server
) -> None:
    upload_id = new_upload_id()
    assert await append(store, upload_id, 0, data(6 * MiB, 6)) == 6 * MiB
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert upload_id in await store.untouched_since(later)
    assert upload_id not in await store.untouched_since(later - timedelta(hours=1))
    await store.delete(upload_id)
    client = s3_server.client()
    bucket = store._bucket
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert await store.untouched_since(later) == []
