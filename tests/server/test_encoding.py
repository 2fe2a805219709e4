"""gzip PATCH bodies: offsets count decoded bytes; bombs and broken streams are refused."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import create_upload, patch, stored

Client = TestClient[Any, Any]
GZIP = {"Content-Encoding": "gzip"}


async def test_options_advertises_gzip_request_bodies(client: Client) -> None:
    resp = await client.options("/files/")
    assert "gzip" in resp.headers["Accept-Encoding"]


async def test_gzip_patch_stores_the_decoded_bytes(client: Client, data_dir: Path) -> None:
    data = b"log line, compressible\n" * 50_000
    path = await create_upload(client, len(data))
    resp = await patch(client, path, 0, gzip.compress(data), **GZIP)
    assert resp.status == 204, await resp.text()
    assert resp.headers["Upload-Offset"] == str(len(data))
    assert stored(data_dir, path) == data


async def test_gzip_patch_checksum_is_over_the_decoded_bytes(
    client: Client, data_dir: Path
) -> None:
    data = os.urandom(1000) * 300
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    path = await create_upload(client, len(data))
    resp = await patch(
        client, path, 0, gzip.compress(data), **GZIP, **{"Upload-Checksum": f"sha256 {digest}"}
    )
    assert resp.status == 204, await resp.text()
    assert stored(data_dir, path) == data


async def test_a_gzip_bomb_is_refused_and_nothing_is_kept(client: Client, data_dir: Path) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # ~64 KiB inflating to 64 MiB
    assert len(bomb) < 200_000
    path = await create_upload(client, 1024 * 1024)
    resp = await patch(client, path, 0, bomb, **GZIP)
    assert resp.status == 413, await resp.text()
    assert stored(data_dir, path) == b""
    head = await client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert head.headers["Upload-Offset"] == "0"


async def test_a_body_that_is_not_gzip_is_a_400(client: Client, data_dir: Path) -> None:
    path = await create_upload(client, 100)
    resp = await patch(client, path, 0, b"plain bytes, not gzip", **GZIP)
    assert resp.status == 400, await resp.text()
    assert stored(data_dir, path) == b""


async def test_other_content_encodings_are_415(client: Client) -> None:
    path = await create_upload(client, 100)
    resp = await patch(client, path, 0, b"x", **{"Content-Encoding": "br"})
    assert resp.status == 415
