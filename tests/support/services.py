"""Real back-end services for tests: an S3 server (moto's server mode, a separate process) and
PostgreSQL databases of their own on the machine's server.

Outside CI a missing service skips the tests that need it; in CI (`CI=true`) it fails them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .processes import free_port, wait_http_ok

POSTGRES_DSN = os.environ.get(
    "UPWELL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip outside CI; fail in CI, where every service must be there."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: service-backed tests must not skip)")
    pytest.skip(reason)


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server and the credentials that reach it."""

    endpoint: str
    region: str = "us-east-1"
    access_key: str = "testing"
    secret_key: str = "testing"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3, aiobotocore and upwell at it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 client for reading back what upwell wrote (a peer no one here wrote)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 server in its own process on a free loopback port."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("moto[server] is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/moto-api/", proc)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL; yields its DSN, drops it after."""
    try:
        import asyncpg
    except ImportError:
        unavailable("asyncpg is not installed")
    import asyncio

    import asyncpg

    name = f"upwell_test_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_DSN} is not reachable: {exc}")
    base = POSTGRES_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
