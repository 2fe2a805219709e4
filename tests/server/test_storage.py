"""FileByteStore: batched appends, rollback, checksums, crash leftovers and concatenation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from upwell.server.ids import new_upload_id
from upwell.server.storage import Checksum, FileByteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FileByteStore]:
    store = await FileByteStore.open(tmp_path / "files", threads=2)
    yield store
    await store.close()


async def test_writer_appends_batches_at_its_offset(store: FileByteStore) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    writer = await store.open_writer(upload_id, 0)
    await writer.write([b"ab", b"cd"])
    await writer.write([b"ef"])
    appended = await writer.finish([b"gh", b""])
    assert appended.kept == 8
    writer = await store.open_writer(upload_id, 8)
    assert (await writer.finish([b"ij"])).kept == 2
    assert store.local_path(upload_id).read_bytes() == b"abcdefghij"


async def test_writer_rolls_back_everything_when_not_kept(store: FileByteStore) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    await (await store.open_writer(upload_id, 0)).finish([b"keep"])
    writer = await store.open_writer(upload_id, 4)
    await writer.write([b"x" * 100_000])
    appended = await writer.finish([b"y"], keep=False)
    assert appended.kept == 0
    assert store.local_path(upload_id).read_bytes() == b"keep"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_writer_checks_the_checksum_over_all_batches(
    store: FileByteStore, algorithm: str
) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    good = Checksum(algorithm, hashlib.new(algorithm, b"abcdef").digest())
    writer = await store.open_writer(upload_id, 0, good)
    await writer.write([b"ab", b"c"])
    appended = await writer.finish([b"def"])
    assert (appended.kept, appended.checksum_mismatch) == (6, False)
    bad = Checksum(algorithm, hashlib.new(algorithm, b"nope").digest())
    writer = await store.open_writer(upload_id, 6, bad)
    await writer.write([b"gh"])
    appended = await writer.finish([b"i"])
    assert (appended.kept, appended.checksum_mismatch) == (0, True)
    assert store.local_path(upload_id).read_bytes() == b"abcdef"


async def test_opening_a_writer_cuts_bytes_past_the_recorded_offset(
    store: FileByteStore,
) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    store.local_path(upload_id).write_bytes(b"acked" + b"never-acknowledged")
    await (await store.open_writer(upload_id, 5)).finish([b"!"])
    assert store.local_path(upload_id).read_bytes() == b"acked!"


async def test_concatenate_joins_parts_in_order(store: FileByteStore) -> None:
    parts = []
    for blob in (b"one-", b"", b"two-" * 300_000, b"three"):
        part = new_upload_id()
        await store.create(part)
        await (await store.open_writer(part, 0)).finish([blob])
        parts.append(part)
    final = new_upload_id()
    await store.create(final)
    size = await store.concatenate(final, parts)
    expected = b"one-" + b"two-" * 300_000 + b"three"
    assert size == len(expected)
    segments = await store.segments(final)
    assert b"".join(p.read_bytes() for p in segments) == expected
    assert hashlib.sha256(expected).digest() == await store.sha256(final)


async def test_concatenation_links_instead_of_copying_and_outlives_its_parts(
    store: FileByteStore,
) -> None:
    parts = []
    for blob in (b"a" * 1000, b"b" * 2000):
        part = new_upload_id()
        await store.create(part)
        await (await store.open_writer(part, 0)).finish([blob])
        parts.append(part)
    final = new_upload_id()
    await store.create(final)
    await store.concatenate(final, parts)
    segments = await store.segments(final)
    assert [p.stat().st_ino for p in segments] == [
        store.local_path(p).stat().st_ino for p in parts
    ]  # the same inodes: nothing was copied
    for part in parts:
        await store.delete(part)
    assert b"".join(p.read_bytes() for p in segments) == b"a" * 1000 + b"b" * 2000
    await store.delete(final)
    assert not any(p.exists() for p in segments)


async def test_delete_removes_the_file_and_tolerates_a_missing_one(store: FileByteStore) -> None:
    upload_id = new_upload_id()
    await store.create(upload_id)
    await store.delete(upload_id)
    assert not store.local_path(upload_id).exists()
    await store.delete(upload_id)


def test_local_path_refuses_anything_but_an_upload_id(tmp_path: Path) -> None:
    store = FileByteStore(tmp_path, threads=1)
    try:
        for bad in ("../x", "..", "a" * 32 + "/", "A" * 32, ""):
            with pytest.raises(ValueError):
                store.local_path(bad)
    finally:
        store._executor.shutdown()
