"""Request bodies read from a file range, over real loopback sockets: by sendfile on a plain
connection, slice by slice through TLS; the same bytes, the same progress, either way."""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.support.files import make_file
from upwell.engine.reader import FileSlices, FileSource
from upwell.errors import SourceError
from upwell.targets.http import FilePayload

MiB = 1024 * 1024


@dataclass
class Echo:
    url: str
    client_ssl: ssl.SSLContext | None


async def _digest(request: web.Request) -> web.Response:
    h = hashlib.sha256()
    size = 0
    async for block in request.content.iter_any():
        h.update(block)
        size += len(block)
    return web.json_response(
        {
            "size": size,
            "sha256": h.hexdigest(),
            "content_length": request.headers.get("Content-Length"),
            "chunked": "chunked" in request.headers.get("Transfer-Encoding", ""),
        }
    )


@pytest.fixture(params=["plain", "tls"])
async def echo(request: pytest.FixtureRequest) -> AsyncIterator[Echo]:
    """A server that answers with the size and SHA-256 of the body it received."""
    app = web.Application()
    app.router.add_put("/", _digest)
    server_ssl = client_ssl = None
    if request.param == "tls":
        ca = trustme.CA()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
        client_ssl = ssl.create_default_context()
        ca.configure_trust(client_ssl)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if server_ssl else "http"
    try:
        yield Echo(f"{scheme}://127.0.0.1:{port}/", client_ssl)
    finally:
        await runner.cleanup()


async def put(echo: Echo, payload: FilePayload) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.put(echo.url, data=payload, ssl=echo.client_ssl or True) as r,
    ):
        assert r.status == 200, await r.text()
        result: dict[str, object] = await r.json()
        return result


async def test_a_range_arrives_whole_with_its_length_and_progress(
    echo: Echo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(tmp_path / "f.bin", 5 * MiB + 123)
    offset, size = MiB + 7, 3 * MiB + 5
    expected = hashlib.sha256(path.read_bytes()[offset : offset + size]).hexdigest()
    handed: list[int] = []
    metered: list[int] = []
    source = await FileSource.open(path)
    try:
        slices = FileSlices(source, offset, size, handed.append, metered.append, slice_size=MiB)
        with caplog.at_level(logging.DEBUG, logger="upwell"):
            got = await put(echo, FilePayload(slices, "application/offset+octet-stream"))
    finally:
        await source.close()
    assert got == {
        "size": size,
        "sha256": expected,
        "content_length": str(size),
        "chunked": False,
    }
    assert handed == [MiB, MiB, MiB, 5]  # progress slice by slice, not once at the end
    assert metered == handed
    way = "sendfile" if echo.url.startswith("http:") else "read in slices"
    assert any(way in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]


async def test_a_file_that_shrank_is_not_sent_as_if_whole(echo: Echo, tmp_path: Path) -> None:
    path = make_file(tmp_path / "f.bin", 4 * MiB)
    source = await FileSource.open(path)
    try:
        os.truncate(path, 2 * MiB)
        payload = FilePayload(FileSlices(source, 0, 4 * MiB), "application/octet-stream")
        with pytest.raises((SourceError, aiohttp.ClientError)) as caught:
            await put(echo, payload)
    finally:
        await source.close()
    error: BaseException | None = caught.value
    while error is not None and not isinstance(error, SourceError):
        error = error.__cause__ or error.__context__
    assert isinstance(error, SourceError), caught.value
    assert "shrank" in str(error)
