"""Fixtures for the gateway's tests: a server app with forwards, tokens and limits, on a real
loopback socket, and Gemini emulators to forward into."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from upwell.emulators.gemini import FaultPlan, create_gemini_app
from upwell.server.app import create_app
from upwell.server.gateway.forwarding import ForwardTarget
from upwell.server.gateway.keys import GATEWAY
from upwell.server.settings import ServerSettings
from upwell.targets.gemini import GeminiTarget

from ..conftest import TUS, FakeClock

Client = TestClient[Any, Any]
MakeGateway = Callable[..., Awaitable[Client]]
GEMINI_KEY = "emulator-key-123"
GRANULE = 64 * 1024  # emulator granularity, so small files still take several chunks


def b64(value: str) -> str:
    import base64

    return base64.b64encode(value.encode()).decode()


async def tus_upload(
    client: Client,
    data: bytes,
    filename: str = "a.bin",
    filetype: str = "application/x-test",
    headers: dict[str, str] | None = None,
    finish: bool = True,
) -> str:
    """Create (and by default finish) a tus upload; returns its id."""
    extra = headers or {}
    resp = await client.post(
        "/files/",
        headers={
            **TUS,
            **extra,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": f"filename {b64(filename)},filetype {b64(filetype)}",
        },
    )
    assert resp.status == 201, await resp.text()
    upload_id = resp.headers["Location"].rsplit("/", 1)[1]
    if finish and data:
        resp = await client.patch(
            f"/files/{upload_id}",
            data=data,
            headers={
                **TUS,
                **extra,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert resp.status == 204, await resp.text()
    return upload_id


async def json_of(resp: ClientResponse, status: int = 200) -> Any:
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text)


@pytest.fixture
def make_gateway(aiohttp_client: Any, data_dir: Path, fake_clock: FakeClock) -> MakeGateway:
    """A test client for create_app(ServerSettings(data_dir=..., **overrides), forwards=...)."""

    async def make(
        forwards: tuple[ForwardTarget, ...] = (), real_clock: bool = False, **overrides: Any
    ) -> Client:
        settings = ServerSettings(data_dir=data_dir, port=0, **overrides)
        if real_clock:
            app = create_app(settings, forwards=forwards)
        else:
            app = create_app(settings, clock=fake_clock.clock(), forwards=forwards)
        client: Client = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Client:
    return await make_gateway()


class Emulator:
    """A Gemini emulator on a loopback port, and a target pointing at it."""

    def __init__(self, server: TestServer, faults: FaultPlan, data_dir: Path) -> None:
        self.server = server
        self.faults = faults
        self.data_dir = data_dir

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def target(self, name: str = "gemini") -> ForwardTarget:
        target = GeminiTarget(GEMINI_KEY, self.base_url, "v1beta", granularity=GRANULE)
        return ForwardTarget(name, target)

    def files(self) -> list[Path]:
        """The finished files' bytes the emulator keeps."""
        return sorted((self.data_dir / "files").glob("*.bin"))


MakeEmulator = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def make_emulator(tmp_path: Path) -> AsyncIterator[MakeEmulator]:
    servers: list[TestServer] = []

    async def make(faults: FaultPlan | None = None, **options: Any) -> Emulator:
        plan = faults or FaultPlan()
        data_dir = tmp_path / f"gemini-{len(servers)}"
        app: web.Application = create_gemini_app(
            data_dir, api_key=GEMINI_KEY, faults=plan, granularity=GRANULE, **options
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Emulator(server, plan, data_dir)

    yield make
    for server in servers:
        await server.close()


async def forwards_settled(client: Client) -> None:
    """Until the server runs no forward (bounded by the test's timeout)."""
    forwarder = client.app[GATEWAY].forwarder
    assert forwarder is not None
    await forwarder.wait()
