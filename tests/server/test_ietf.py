"""The IETF resumable-upload draft served beside tus, over real loopback HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import MakeClient, stored
from .test_tus import assert_refused

Client = TestClient[Any, Any]


def v(version: int, **headers: str) -> dict[str, str]:
    return {"Upload-Draft-Interop-Version": str(version), **headers}


async def create(client: Client, version: int, **headers: str) -> str:
    resp = await client.post("/files/", headers=v(version, **{"Upload-Complete": "?0", **headers}))
    assert resp.status == 201, await resp.text()
    return "/files/" + resp.headers["Location"].rsplit("/", 1)[1]


def append(version: int, offset: int, complete: bool) -> dict[str, str]:
    return v(
        version,
        **{
            "Upload-Offset": str(offset),
            "Upload-Complete": "?1" if complete else "?0",
            "Content-Type": "application/partial-upload",
        },
    )


@pytest.mark.parametrize("version", [6, 8])
async def test_create_append_and_complete(client: Client, data_dir: Path, version: int) -> None:
    path = await create(client, version)
    head = await client.head(path, headers=v(version))
    assert head.status == 204
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Complete"] == "?0"
    assert head.headers["Cache-Control"] == "no-store"
    assert "Tus-Version" not in head.headers

    resp = await client.patch(path, data=b"hello ", headers=append(version, 0, False))
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "6"
    resp = await client.patch(path, data=b"world", headers=append(version, 6, True))
    assert resp.status == 200
    assert resp.headers["Upload-Complete"] == "?1"
    head = await client.head(path, headers=v(version))
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"
    assert head.headers["Upload-Complete"] == "?1"
    assert stored(data_dir, path) == b"hello world"
    assert await (await client.get(path)).read() == b"hello world"


async def test_upload_limit_from_interop_8(make_client: MakeClient) -> None:
    client = await make_client(max_size=1000)
    path = await create(client, 8)
    assert (await client.head(path, headers=v(8))).headers["Upload-Limit"] == (
        "max-size=1000, expires=172800"
    )
    assert "Upload-Limit" not in (await client.head(path, headers=v(6))).headers
    options = await client.options("/files/")
    assert options.headers["Upload-Draft-Interop-Version"] == "5, 6, 8"


async def test_an_append_at_the_wrong_offset_is_409(client: Client, data_dir: Path) -> None:
    path = await create(client, 6)
    await client.patch(path, data=b"abc", headers=append(6, 0, False))
    await assert_refused(await client.patch(path, data=b"x", headers=append(6, 5, False)), 409)
    await assert_refused(await client.patch(path, data=b"x", headers=append(6, 1, False)), 409)
    assert stored(data_dir, path) == b"abc"


async def test_an_append_of_another_type_is_415_from_interop_6(client: Client) -> None:
    path = await create(client, 6)
    headers = {**append(6, 0, False), "Content-Type": "application/offset+octet-stream"}
    await assert_refused(await client.patch(path, data=b"x", headers=headers), 415)


async def test_malformed_or_unsupported_headers_are_400(client: Client) -> None:
    path = await create(client, 6)
    for headers in (
        {**append(6, 0, False), "Upload-Complete": "yes"},
        {k: val for k, val in append(6, 0, False).items() if k != "Upload-Complete"},
        {**append(6, 0, False), "Upload-Draft-Interop-Version": "3"},
    ):
        await assert_refused(await client.patch(path, data=b"x", headers=headers), 400)


async def test_completing_short_of_upload_length_is_400(client: Client) -> None:
    path = await create(client, 6, **{"Upload-Length": "10"})
    await assert_refused(await client.patch(path, data=b"abc", headers=append(6, 0, True)), 400)
    head = await client.head(path, headers=v(6))
    assert head.headers["Upload-Offset"] == "3"  # kept: the client may still send the rest
    assert (await client.patch(path, data=b"d" * 7, headers=append(6, 3, True))).status == 200
    await assert_refused(await client.patch(path, data=b"e", headers=append(6, 10, True)), 400)


async def test_cancellation_deletes_the_upload(client: Client, data_dir: Path) -> None:
    path = await create(client, 8)
    assert (await client.delete(path, headers=v(8))).status == 204
    assert (await client.head(path, headers=v(8))).status == 404
    assert not (data_dir / "files" / path.rsplit("/", 1)[1]).exists()


async def test_a_creation_with_a_body_sends_104_with_the_url_first(
    client: Client, data_dir: Path
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"POST /files/ HTTP/1.1\r\nHost: x\r\nUpload-Draft-Interop-Version: 6\r\n"
            b"Upload-Complete: ?1\r\nContent-Length: 5\r\n\r\n"
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 104 "), interim
        location = next(
            line.split(b": ", 1)[1]
            for line in interim.split(b"\r\n")
            if line.startswith(b"Location")
        ).decode()
        writer.write(b"12345")
        await writer.drain()
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert final.startswith(b"HTTP/1.1 201 "), final
        assert b"Upload-Complete: ?1" in final
    finally:
        writer.close()
        await writer.wait_closed()
    assert stored(data_dir, location) == b"12345"
