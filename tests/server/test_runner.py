"""Running the server: embedded on a free port, and `serve_forever` as the CLI runs it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from pathlib import Path

import aiohttp

from upwell.server.runner import running_server, serve_forever
from upwell.server.settings import ServerSettings


async def test_running_server_yields_the_tus_url_on_a_free_port(data_dir: Path) -> None:
    settings = ServerSettings(host="127.0.0.1", port=0, data_dir=data_dir)
    async with running_server(settings) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/files/", url)
        assert not url.endswith(":0/files/")
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, headers={"Tus-Resumable": "1.0.0", "Upload-Length": "0"}) as resp,
        ):
            assert resp.status == 201
            assert resp.headers["Location"].startswith(url)


async def test_upwell_server_fixture_serves_tus(upwell_server: str) -> None:
    async with aiohttp.ClientSession() as session, session.options(upwell_server) as resp:
        assert resp.status == 204
        assert resp.headers["Tus-Version"] == "1.0.0"


async def test_state_survives_a_restart(data_dir: Path) -> None:
    settings = ServerSettings(port=0, data_dir=data_dir)
    headers = {"Tus-Resumable": "1.0.0"}
    async with aiohttp.ClientSession() as session:
        async with running_server(settings) as url:
            async with session.post(url, headers={**headers, "Upload-Length": "6"}) as resp:
                upload_id = resp.headers["Location"].rsplit("/", 1)[1]
            async with session.patch(
                url + upload_id,
                data=b"abc",
                headers={
                    **headers,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
            ) as resp:
                assert resp.status == 204
        async with (
            running_server(settings) as url,
            session.head(url + upload_id, headers=headers) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Upload-Offset"] == "3"


class _Announced(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r"http://\S+/files/", record.getMessage())
        if match and not self.url.done():
            self.url.set_result(match.group(0))


async def _serve_until_announced(data_dir: Path) -> tuple[asyncio.Task[None], str]:
    logger = logging.getLogger("upwell.server")
    announced = _Announced()
    logger.addHandler(announced)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        task = asyncio.create_task(serve_forever(ServerSettings(port=0, data_dir=data_dir)))
        url = await asyncio.wait_for(announced.url, 10)
    finally:
        logger.removeHandler(announced)
        logger.setLevel(old_level)
    async with (
        aiohttp.ClientSession() as session,
        session.get(url.replace("/files/", "/healthz")) as resp,
    ):
        assert resp.status == 200
    return task, url


async def test_serve_forever_stops_cleanly_on_sigterm(data_dir: Path) -> None:
    task, _ = await _serve_until_announced(data_dir)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)
    assert task.done() and task.exception() is None


async def test_serve_forever_stops_when_cancelled(data_dir: Path) -> None:
    task, url = await _serve_until_announced(data_dir)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url.replace("/files/", "/healthz")):
                raise AssertionError("still serving")
        except aiohttp.ClientConnectionError:
            pass
