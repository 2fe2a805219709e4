"""Three `upwell serve` processes sharing one PostgreSQL database and one store of bytes: a
data directory, or an S3 bucket on the moto server."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import UPWELL, free_port, wait_http_ok
from tests.support.services import S3Server

REPLICAS = 3


@dataclass
class Replica:
    url: str  # the tus endpoint, http://127.0.0.1:PORT/files/
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return self.url.removesuffix("/files/")


@dataclass
class Cluster:
    replicas: list[Replica]
    storage: str  # "disk" or "s3"
    files_dir: Path  # the shared data directory's files (disk)
    bucket: str | None
    s3: S3Server | None
    dsn: str

    async def writing(self, upload_id: str) -> bool:
        """Whether some replica holds the upload's write lock right now."""
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM upload_writers WHERE upload_id = $1", upload_id
            )
        finally:
            await conn.close()
        return bool(found)

    def stored_size(self, upload_id: str) -> int:
        """Bytes the store holds for an unfinished upload, committed or not."""
        if self.storage == "disk":
            path = self.files_dir / upload_id
            return path.stat().st_size if path.exists() else 0
        assert self.s3 is not None
        client = self.s3.client()
        total = 0
        found = client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"up/{upload_id}")
        for mpu in found.get("Uploads", []):
            parts = client.list_parts(Bucket=self.bucket, Key=mpu["Key"], UploadId=mpu["UploadId"])
            total += sum(p["Size"] for p in parts.get("Parts", []))
        return total


@contextlib.contextmanager
def replica(data_dir: Path, extra: list[str], env: dict[str, str]) -> Iterator[Replica]:
    port = free_port()
    proc = subprocess.Popen(
        [*UPWELL, "serve", "--port", str(port), "--data-dir", str(data_dir), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", proc, timeout=30)
        yield Replica(f"http://127.0.0.1:{port}/files/", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(params=["disk", "s3"])
def cluster(request: pytest.FixtureRequest, postgres_dsn: str, tmp_path: Path) -> Iterator[Cluster]:
    """Three replicas on loopback; the test may kill any of them."""
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    extra = ["--state", postgres_dsn]
    env: dict[str, str] = {}
    bucket = s3 = None
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = f"upwell-{secrets.token_hex(4)}"
        s3.client().create_bucket(Bucket=bucket)
        extra += ["--storage", f"s3://{bucket}/up"]
        env = s3.env()
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(replica(data_dir, extra, env)) for _ in range(REPLICAS)]
        yield Cluster(replicas, request.param, data_dir / "files", bucket, s3, postgres_dsn)
