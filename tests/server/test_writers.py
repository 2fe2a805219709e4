"""Bodies that break off and writers that race: what arrived is kept, bytes never interleave,
and a writer gone quiet is taken over."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import TUS, FakeClock, WatchedLocker, create_upload, patch, stored

Client = TestClient[Any, Any]


class RawPatch:
    """A PATCH sent by hand over its own socket, so the test decides when bytes stop coming."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def start(
        cls, client: Client, path: str, offset: int, length: int, **headers: str
    ) -> RawPatch:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: {client.host}\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
                f"Content-Length: {length}\r\n{extra}\r\n"
            ).encode()
        )
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def status(self) -> int:
        line = await self.reader.readline()
        return int(line.split()[1]) if line else 0

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def upload_id(path: str) -> str:
    return path.rsplit("/", 1)[1]


async def offset_of(client: Client, path: str) -> int:
    resp = await client.head(path, headers=TUS)
    return int(resp.headers["Upload-Offset"])


async def test_cut_off_body_keeps_exactly_the_bytes_that_arrived(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    path = await create_upload(client, 10_000)
    raw = await RawPatch.start(client, path, 0, 10_000)
    await locker.acquired(upload_id(path))
    await raw.send(b"a" * 1234)
    await raw.close()
    await locker.released(upload_id(path))
    assert await offset_of(client, path) == 1234
    assert stored(data_dir, path) == b"a" * 1234
    # and the upload resumes from there
    resp = await patch(client, path, 1234, b"b" * (10_000 - 1234))
    assert resp.status == 204
    assert stored(data_dir, path) == b"a" * 1234 + b"b" * (10_000 - 1234)


async def test_cut_off_body_after_several_batches_keeps_every_byte(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    size = 8 * 1024 * 1024
    sent = bytes(range(256)) * (3 * 1024 * 1024 // 256) + b"tail"
    path = await create_upload(client, size)
    raw = await RawPatch.start(client, path, 0, size)
    await locker.acquired(upload_id(path))
    await raw.send(sent)
    await raw.close()
    await locker.released(upload_id(path))
    assert await offset_of(client, path) == len(sent)
    assert stored(data_dir, path) == sent


async def test_cut_off_body_with_a_checksum_keeps_nothing(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    path = await create_upload(client, 100)
    await patch(client, path, 0, b"ok")
    digest = base64.b64encode(hashlib.sha1(b"x" * 98).digest()).decode()
    raw = await RawPatch.start(client, path, 2, 98, **{"Upload-Checksum": f"sha1 {digest}"})
    await locker.acquired(upload_id(path), nth=1)
    await raw.send(b"x" * 50)
    await raw.close()
    await locker.released(upload_id(path), nth=1)
    assert await offset_of(client, path) == 2
    assert stored(data_dir, path) == b"ok"


async def test_second_patch_while_the_first_streams_is_423(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    path = await create_upload(client, 200)
    first = await RawPatch.start(client, path, 0, 200)
    await first.send(b"1" * 100)
    await locker.received(upload_id(path), 100)
    resp = await patch(client, path, 0, b"2" * 200)
    assert resp.status == 423
    assert "another request" in await resp.text()
    await first.send(b"1" * 100)
    assert await first.status() == 204
    await first.close()
    assert stored(data_dir, path) == b"1" * 200


async def test_a_quiet_writer_is_taken_over_and_its_bytes_are_kept(
    client: Client, locker: WatchedLocker, fake_clock: FakeClock, data_dir: Path
) -> None:
    path = await create_upload(client, 300)
    first = await RawPatch.start(client, path, 0, 300)
    await first.send(b"1" * 100)
    await locker.received(upload_id(path), 100)
    fake_clock.advance(6)  # past stale_writer_seconds (5) without a byte
    # The newcomer is answered against the real offset: the quiet writer stored 100 bytes.
    resp = await patch(client, path, 0, b"2" * 300)
    assert resp.status == 409
    resp = await patch(client, path, 100, b"3" * 200)
    assert resp.status == 204
    assert stored(data_dir, path) == b"1" * 100 + b"3" * 200
    # The stopped writer's late bytes go nowhere.
    await first.close()


async def test_takeover_answers_204_when_the_offset_matches(
    client: Client, locker: WatchedLocker, fake_clock: FakeClock, data_dir: Path
) -> None:
    path = await create_upload(client, 300)
    first = await RawPatch.start(client, path, 0, 300)
    await first.send(b"1" * 100)
    await locker.received(upload_id(path), 100)
    fake_clock.advance(6)
    resp = await patch(client, path, 100, b"3" * 200)
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "300"
    assert stored(data_dir, path) == b"1" * 100 + b"3" * 200
    await first.close()


async def test_a_writer_still_sending_is_not_taken_over(
    client: Client, locker: WatchedLocker, fake_clock: FakeClock, data_dir: Path
) -> None:
    path = await create_upload(client, 300)
    first = await RawPatch.start(client, path, 0, 300)
    await first.send(b"1" * 100)
    await locker.received(upload_id(path), 100)
    fake_clock.advance(4)
    await first.send(b"1" * 100)
    await locker.received(upload_id(path), 200)
    fake_clock.advance(4)  # 8 s since it started, 4 s since its last bytes
    assert (await patch(client, path, 0, b"2")).status == 423
    await first.send(b"1" * 100)
    assert await first.status() == 204
    await first.close()


async def test_delete_while_a_patch_streams_stops_it_and_removes_the_upload(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    path = await create_upload(client, 200)
    first = await RawPatch.start(client, path, 0, 200)
    await first.send(b"1" * 10)
    await locker.received(upload_id(path), 10)
    assert (await client.delete(path, headers=TUS)).status == 204
    assert (await client.head(path, headers=TUS)).status == 404
    assert list((data_dir / "files").iterdir()) == []
    await first.close()


async def test_a_head_right_after_a_cut_answers_what_the_cut_patch_stored(
    client: Client, locker: WatchedLocker, data_dir: Path
) -> None:
    """The client whose PATCH broke asks HEAD at once; the writer may still be storing and
    committing the bytes that arrived. HEAD waits for it, so the client does not resend them."""
    path = await create_upload(client, 10_000)
    raw = await RawPatch.start(client, path, 0, 10_000)
    await locker.acquired(upload_id(path))
    await raw.send(b"c" * 4321)
    await locker.received(upload_id(path), 4321)
    raw.writer.transport.abort()  # a reset, as a proxy cutting the link sends
    assert await offset_of(client, path) == 4321  # not 0: no release awaited before asking
    assert stored(data_dir, path) == b"c" * 4321
