"""The S3 target against moto's S3 server (its own process), with boto3 reading back what
upwell wrote; faults injected by a recording HTTP proxy and a TCP proxy that cuts connections."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import make_file
from tests.support.http_faults import http_fault_proxy, is_part
from tests.support.proxy import fault_proxy
from tests.support.services import S3Server
from upwell.aws import AWSSettings
from upwell.engine.pipeline import Journal, Pipeline
from upwell.engine.retry import RetryPolicy
from upwell.progress import ProgressTracker
from upwell.targets.http import new_session
from upwell.targets.s3 import S3Target
from upwell.uploaders import ChunkedUploader, ParallelUploader, ResumableUploader

MiB = 1024 * 1024


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """The moto server, with the standard AWS variables pointing at it."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    yield s3_server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"upwell-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


def target(endpoint: str, bucket: str, key: str = "data/big.bin") -> S3Target:
    return S3Target(f"s3://{bucket}/{key}", AWSSettings(endpoint_url=endpoint, region="us-east-1"))


def read_back(s3: S3Server, bucket: str, key: str) -> bytes:
    body: bytes = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_multipart_upload_is_byte_identical_with_a_checksum_on_every_part(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    size = 23 * MiB + 12345
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", size, 1)
    async with http_fault_proxy(s3.endpoint) as proxy:
        up = ParallelUploader(target=target(proxy.url, bucket), chunk_size=5 * MiB, max_parallel=4)
        result = await up.upload_file(src)
    assert result.success, result.error
    assert result.file_name == "data/big.bin"
    assert result.file_uri == f"s3://{bucket}/data/big.bin"
    data = src.read_bytes()
    assert read_back(s3, bucket, "data/big.bin") == data
    puts = sorted(proxy.part_puts(), key=lambda p: int(p.query["partNumber"]))
    assert [int(p.query["partNumber"]) for p in puts] == [1, 2, 3, 4, 5]
    for p in puts:
        n = int(p.query["partNumber"])
        part = data[(n - 1) * 5 * MiB : n * 5 * MiB]
        assert p.body_sha256 == hashlib.sha256(part).digest()
        assert p.headers["x-amz-checksum-sha256"] == b64sha(part)
        assert "x-amz-checksum-sha256" in p.query["X-Amz-SignedHeaders"]
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_a_file_under_one_part_goes_as_a_single_put_object(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "notes.txt", 3 * MiB + 7, 2)
    async with http_fault_proxy(s3.endpoint) as proxy:
        up = ParallelUploader(target=target(proxy.url, bucket, "docs/"), max_parallel=4)
        result = await up.upload_file(src)
    assert result.success, result.error
    assert result.file_name == "docs/notes.txt"  # a key ending in / is a prefix
    assert read_back(s3, bucket, "docs/notes.txt") == src.read_bytes()
    assert not any("uploads" in s.query for s in proxy.seen)  # no CreateMultipartUpload
    (put,) = proxy.part_puts()
    assert "partNumber" not in put.query
    assert put.headers["x-amz-checksum-sha256"] == b64sha(src.read_bytes())
    head = s3.client().head_object(Bucket=bucket, Key="docs/notes.txt")
    assert head["ContentType"] == "text/plain"


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (400, "BadDigest")]
)
async def test_a_failed_part_is_sent_again(
    tmp_path: Path, s3: S3Server, bucket: str, status: int, code: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 16 * MiB, 3)
    async with http_fault_proxy(s3.endpoint) as proxy:
        proxy.fail(is_part(2), status, code, times=2)
        up = ParallelUploader(
            target=target(proxy.url, bucket), chunk_size=5 * MiB, max_parallel=2, sleep=no_sleep
        )
        result = await up.upload_file(src)
    assert result.success, result.error
    assert read_back(s3, bucket, "data/big.bin") == src.read_bytes()
    tries = [s.status for s in proxy.seen if s.query.get("partNumber") == "2"]
    assert tries == [status, status, 200]


async def test_a_connection_dropped_mid_part_is_retried(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 18 * MiB, 4)
    async with fault_proxy(s3.endpoint, cut_at=[7 * MiB, 14 * MiB]) as proxy:
        up = ParallelUploader(
            target=target(f"http://127.0.0.1:{proxy.port}", bucket),
            chunk_size=5 * MiB,
            max_parallel=2,
            sleep=no_sleep,
        )
        result = await up.upload_file(src)
    assert result.success, result.error
    assert proxy.cuts == 2
    assert read_back(s3, bucket, "data/big.bin") == src.read_bytes()


async def test_access_denied_is_final_and_names_no_secret(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 11 * MiB, 5)
    async with http_fault_proxy(s3.endpoint) as proxy:
        proxy.fail(is_part(2), 403, "AccessDenied", times=100)
        up = ChunkedUploader(target=target(proxy.url, bucket), chunk_size=5 * MiB, sleep=no_sleep)
        result = await up.upload_file(src)
    assert not result.success
    assert "AccessDenied" in (result.error or "")
    assert "testing" not in (result.error or "")  # neither key id nor secret
    assert "X-Amz-Signature" not in (result.error or "")
    assert [s.status for s in proxy.seen if s.query.get("partNumber") == "2"] == [403]


async def test_a_missing_bucket_is_a_clear_final_error(tmp_path: Path, s3: S3Server) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 11 * MiB, 5)
    up = ChunkedUploader(target=target(s3.endpoint, "no-such-bucket-here"), chunk_size=5 * MiB)
    result = await up.upload_file(src)
    assert not result.success
    assert "NoSuchBucket" in (result.error or "")


async def test_a_rerun_resumes_through_list_parts_and_sends_only_missing_parts(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    size = 26 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", size, 6)
    sessions = tmp_path / "sessions"
    async with http_fault_proxy(s3.endpoint) as proxy:
        proxy.fail(is_part(4), 403, "AccessDenied", times=1)
        first = ResumableUploader(
            target=target(proxy.url, bucket), chunk_size=5 * MiB, max_parallel=1,
            session_dir=sessions, sleep=no_sleep,
        )  # fmt: skip
        r1 = await first.upload_file_resumable(src)
        assert not r1.success
        assert s3.client().list_multipart_uploads(Bucket=bucket)["Uploads"]  # kept to resume
        before = len(proxy.part_puts())
        assert before == 3
        second = ResumableUploader(
            target=target(proxy.url, bucket), chunk_size=5 * MiB, max_parallel=3,
            session_dir=sessions, sleep=no_sleep,
        )  # fmt: skip
        r2 = await second.upload_file_resumable(src)
    assert r2.success, r2.error
    sent = sorted(int(p.query["partNumber"]) for p in proxy.part_puts()[before:])
    assert sent == [4, 5, 6]
    assert any(s.query.get("uploadId") and s.method == "GET" for s in proxy.seen)  # ListParts
    assert read_back(s3, bucket, "data/big.bin") == src.read_bytes()


async def test_an_aborted_upload_id_starts_over(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 16 * MiB, 7)
    sessions = tmp_path / "sessions"
    async with http_fault_proxy(s3.endpoint) as proxy:
        proxy.fail(is_part(3), 403, "AccessDenied", times=1)
        kw: dict[str, Any] = dict(chunk_size=5 * MiB, max_parallel=1, session_dir=sessions)
        r1 = await ResumableUploader(target=target(proxy.url, bucket), **kw).upload_file_resumable(
            src
        )
        assert not r1.success
        client = s3.client()
        (upload,) = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        r2 = await ResumableUploader(target=target(proxy.url, bucket), **kw).upload_file_resumable(
            src
        )
    assert r2.success, r2.error
    assert read_back(s3, bucket, "data/big.bin") == src.read_bytes()


async def test_an_upload_begun_by_boto3_is_finished_from_its_listed_parts(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    size = 17 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", size, 8)
    data = src.read_bytes()
    client = s3.client()
    key = "data/big.bin"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    for n in (1, 2):
        part = data[(n - 1) * 5 * MiB : n * 5 * MiB]
        client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=part,
            ChecksumSHA256=b64sha(part),
        )  # fmt: skip
    async with http_fault_proxy(s3.endpoint) as proxy:
        t = target(proxy.url, bucket, key)
        http = new_session(connections=8, connect_timeout=10, read_timeout=60)
        try:
            pipeline = Pipeline(http, t, chunk_size=5 * MiB, max_parallel=4, retry=RetryPolicy())
            tracker = ProgressTracker()
            tracker.create_task("t", size)
            state = {"bucket": bucket, "key": key, "upload_id": upload_id}
            outcome = await pipeline.run(src, tracker, "t", journal=Journal(resume_state=state))
        finally:
            await t.close()
            await http.close()
    assert sorted(int(p.query["partNumber"]) for p in proxy.part_puts()) == [3, 4]
    assert outcome.bytes_sent == size - 10 * MiB
    assert read_back(s3, bucket, key) == data


async def test_cancelling_an_upload_aborts_the_multipart_upload(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 40 * MiB, 9)
    started = asyncio.Event()
    async with http_fault_proxy(s3.endpoint) as proxy:

        def on_progress(p: Any) -> None:
            if p.bytes_uploaded >= 5 * MiB:
                started.set()

        up = ParallelUploader(target=target(proxy.url, bucket), chunk_size=5 * MiB, max_parallel=2)
        task = asyncio.ensure_future(up.upload_file(src, progress_callback=on_progress))
        await asyncio.wait_for(started.wait(), 60)
        assert s3.client().list_multipart_uploads(Bucket=bucket)["Uploads"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_a_finished_upload_is_not_sent_again_while_the_object_is_there(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 12 * MiB, 10)
    sessions = tmp_path / "sessions"
    async with http_fault_proxy(s3.endpoint) as proxy:
        kw: dict[str, Any] = dict(chunk_size=5 * MiB, session_dir=sessions)
        r1 = await ResumableUploader(target=target(proxy.url, bucket), **kw).upload_file(src)
        assert r1.success, r1.error
        puts = len(proxy.part_puts())
        r2 = await ResumableUploader(target=target(proxy.url, bucket), **kw).upload_file(src)
        assert r2.success and r2.bytes_sent == 0
        assert len(proxy.part_puts()) == puts
        s3.client().delete_object(Bucket=bucket, Key="data/big.bin")
        r3 = await ResumableUploader(target=target(proxy.url, bucket), **kw).upload_file(src)
        assert r3.success, r3.error
        assert len(proxy.part_puts()) == 2 * puts
    assert read_back(s3, bucket, "data/big.bin") == src.read_bytes()
