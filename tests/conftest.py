"""Fixtures shared by every test: blockbuster on every async test, real servers on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from tests.support.services import S3Server, moto_s3, postgres_database


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Fail any async test whose code blocks the event loop (file I/O, sleep, sockets).

    Only calls made from upwell's own modules count, so pytest and the test helpers may
    prepare files synchronously before the loop runs.
    """
    if not asyncio.iscoroutinefunction(getattr(request.node, "function", None)):
        yield None
        return
    with blockbuster_ctx(scanned_modules=["upwell"]) as bb:
        # asyncpg reads ~/.pgpass and the PG* TLS files synchronously while it resolves a
        # connection's parameters (a new pool connection; never per query): allowed there only.
        for function in bb.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield bb


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "server-data"
    d.mkdir()
    return d


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
async def upwell_server(data_dir: Path) -> AsyncIterator[str]:
    """An in-process `upwell serve` on a free loopback port; yields its tus endpoint URL."""
    from upwell.server.runner import running_server
    from upwell.server.settings import ServerSettings

    async with running_server(ServerSettings(host="127.0.0.1", port=0, data_dir=data_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the whole run (tests use buckets of their own)."""
    with moto_s3() as server:
        yield server


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for this test."""
    with postgres_database() as dsn:
        yield dsn
