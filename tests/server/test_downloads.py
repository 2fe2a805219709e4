"""GET of an upload: bytes with Range, a safe Content-Disposition, a sane Content-Type."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient

from upwell.server.downloads import content_disposition, content_type

from .conftest import TUS, create_upload, patch

Client = TestClient[Any, Any]


def meta(**items: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in items.items())


async def test_get_serves_the_bytes_with_length_and_name(client: Client) -> None:
    data = bytes(range(256)) * 40
    path = await create_upload(
        client, len(data), **{"Upload-Metadata": meta(filename="data.bin", filetype="image/png")}
    )
    await patch(client, path, 0, data)
    resp = await client.get(path)
    assert resp.status == 200
    assert await resp.read() == data
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin"
    )
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_get_with_range_serves_that_slice(client: Client) -> None:
    data = bytes(range(256)) * 40
    path = await create_upload(client, len(data))
    await patch(client, path, 0, data)
    resp = await client.get(path, headers={"Range": "bytes=100-299"})
    assert resp.status == 206
    assert await resp.read() == data[100:300]
    assert resp.headers["Content-Range"] == f"bytes 100-299/{len(data)}"
    resp = await client.get(path, headers={"Range": "bytes=-10"})
    assert await resp.read() == data[-10:]


async def test_get_of_an_unfinished_upload_serves_what_is_stored(client: Client) -> None:
    path = await create_upload(client, 100)
    await patch(client, path, 0, b"partial")
    resp = await client.get(path)
    assert resp.status == 200
    assert await resp.read() == b"partial"


async def test_get_without_filename_uses_the_id_and_octet_stream(client: Client) -> None:
    path = await create_upload(client, 1, **{"Upload-Metadata": meta(filetype="text/html; x=<")})
    await patch(client, path, 0, b"a")
    resp = await client.get(path)
    upload_id = path.rsplit("/", 1)[1]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert f'filename="{upload_id}"' in resp.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("name", "ascii_name", "exact"),
    [
        ("report.pdf", "report.pdf", "report.pdf"),
        ("résumé 2024.pdf", "r_sum_ 2024.pdf", "résumé 2024.pdf"),
        ('a"b;c\r\nd.txt', "a_b_cd.txt", 'a"b;cd.txt'),
        ("../../etc/passwd", "passwd", "passwd"),
        ("C:\\Windows\\evil.exe", "evil.exe", "evil.exe"),
        ("..", "fallback", "fallback"),
        ("", "fallback", "fallback"),
    ],
)
def test_content_disposition_is_safe_for_any_name(name: str, ascii_name: str, exact: str) -> None:
    header = content_disposition(name.encode(), "fallback")
    assert header.startswith(f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''")
    assert unquote(header.split("UTF-8''", 1)[1]) == exact
    assert "\r" not in header and "\n" not in header and header.isascii()


@pytest.mark.parametrize(
    ("filetype", "expected"),
    [
        (b"video/mp4", "video/mp4"),
        (b"Application/PDF", "application/pdf"),
        (b"text/html; charset=utf-8", "application/octet-stream"),
        (b"text", "application/octet-stream"),
        (b"a/b\r\nSet-Cookie: x", "application/octet-stream"),
        (b"\xff\xfe/x", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_content_type_accepts_only_plain_mime_types(filetype: bytes | None, expected: str) -> None:
    assert content_type(filetype) == expected


async def test_a_concatenated_upload_downloads_whole_and_by_ranges_across_parts(
    client: Client,
) -> None:
    blobs = [bytes([65 + i]) * (300_000 + i) for i in range(3)]
    paths = []
    for blob in blobs:
        p = await create_upload(client, len(blob), **{"Upload-Concat": "partial"})
        assert (await patch(client, p, 0, blob)).status == 204
        paths.append(p)
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths)}
    )
    assert resp.status == 201
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    whole = b"".join(blobs)
    got = await client.get(final)
    assert got.status == 200 and await got.read() == whole
    # A partial deleted after the concatenation does not take the final upload's bytes along.
    assert (await client.delete(paths[1], headers=TUS)).status == 204
    for header, lo, hi in [
        ("bytes=299990-300010", 299990, 300011),  # across the first boundary
        ("bytes=0-0", 0, 1),
        ("bytes=-5", len(whole) - 5, len(whole)),
        ("bytes=600000-", 600000, len(whole)),
    ]:
        part = await client.get(final, headers={"Range": header})
        assert part.status == 206, header
        assert await part.read() == whole[lo:hi], header
        assert part.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{len(whole)}"
    beyond = await client.get(final, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status == 416
