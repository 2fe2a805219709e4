"""S3 multipart, sans-IO: limits and planning, keys, checksum values, signed headers, ListParts
pages, Complete arguments, error mapping. No sockets."""

from __future__ import annotations

import base64
import hashlib

import pytest

from upwell.engine.planner import plan_upload
from upwell.errors import ConfigError, TargetError, UploadGone
from upwell.protocols import s3_multipart as s3
from upwell.targets.capabilities import Capabilities

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

CAPS = Capabilities(
    parallel_parts=True,
    append=False,
    checksum_algorithms=("sha256",),
    max_size=s3.MAX_OBJECT_SIZE,
    min_part_size=s3.MIN_PART_SIZE,
    max_parts=s3.MAX_PARTS,
    max_chunk_size=s3.MAX_PART_SIZE,
)


@pytest.mark.parametrize(
    ("size", "requested"),
    [
        (100 * GiB, None),
        (100 * GiB, 5 * MiB),
        (1 * TiB, 8 * MiB),
        (48 * TiB, None),
        (12 * MiB, 1 * MiB),
        (6 * GiB, 6 * GiB),
    ],
)
def test_plans_respect_s3_part_limits(size: int, requested: int | None) -> None:
    plan = plan_upload(size, CAPS, requested, max_parallel=8)
    assert len(plan.chunks) <= s3.MAX_PARTS
    assert all(c.size >= s3.MIN_PART_SIZE for c in plan.chunks[:-1])
    assert all(c.size <= s3.MAX_PART_SIZE for c in plan.chunks)
    assert sum(c.size for c in plan.chunks) == size
    s3.check_layout(size, plan.chunk_size)


def test_a_100_gib_file_with_small_parts_gets_bigger_parts_by_itself() -> None:
    plan = plan_upload(100 * GiB, CAPS, 5 * MiB, max_parallel=4)
    assert plan.chunk_size > 5 * MiB
    assert len(plan.chunks) == s3.MAX_PARTS


def test_check_layout_refuses_what_s3_would_reject() -> None:
    with pytest.raises(ConfigError, match="10000"):
        s3.check_layout(100 * GiB, 5 * MiB)
    with pytest.raises(ConfigError, match="5 MiB"):
        s3.check_layout(20 * MiB, 1 * MiB)
    with pytest.raises(ConfigError, match="5 GiB"):
        s3.check_layout(20 * GiB, 6 * GiB)
    s3.check_layout(3 * MiB, 5 * MiB)  # one part may be small


@pytest.mark.parametrize(
    ("spec", "bucket", "key", "name", "stored"),
    [
        ("s3://my-bucket/a/b.bin", "my-bucket", "a/b.bin", "x.bin", "a/b.bin"),
        ("s3://my-bucket/a/", "my-bucket", "a/", "x.bin", "a/x.bin"),
        ("s3://my-bucket", "my-bucket", "", "x.bin", "x.bin"),
        ("s3://my.bucket/ü ber.txt", "my.bucket", "ü ber.txt", "x", "ü ber.txt"),
    ],
)
def test_s3_urls(spec: str, bucket: str, key: str, name: str, stored: str) -> None:
    url = s3.parse_s3_url(spec)
    assert (url.bucket, url.key) == (bucket, key)
    assert url.object_key(name) == stored


@pytest.mark.parametrize(
    "spec",
    ["s3://", "s3://UPPER/k", "s3://ab/k", "s3://b_k?x=1", "s3://key:secret@bkt/k", "x://b/k"],
)
def test_bad_s3_urls_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        s3.parse_s3_url(spec)


def test_checksum_value_is_base64_of_the_raw_digest() -> None:
    d = hashlib.sha256(b"abc").digest()
    assert s3.checksum_value(d) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    with pytest.raises(ValueError):
        s3.checksum_value(b"short")


def test_part_numbers_follow_chunks() -> None:
    assert s3.part_number(0, 5 * MiB) == 1
    assert s3.part_number(15 * MiB, 5 * MiB) == 4
    with pytest.raises(ValueError):
        s3.part_number(MiB, 5 * MiB)


def test_presigned_headers_supply_every_signed_header_but_host() -> None:
    url = (
        "http://h/b/k?uploadId=u&partNumber=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-SignedHeaders=host%3Bx-amz-checksum-sha256&X-Amz-Signature=abc"
    )
    assert s3.signed_headers(url) == ("host", "x-amz-checksum-sha256")
    assert s3.presigned_headers(url, {"X-Amz-Checksum-SHA256": "v", "content-type": "t"}) == {
        "x-amz-checksum-sha256": "v"
    }
    with pytest.raises(TargetError, match="x-amz-checksum-sha256"):
        s3.presigned_headers(url, {})


def test_list_parts_pages_and_markers() -> None:
    pages = [
        {
            "IsTruncated": True,
            "NextPartNumberMarker": 2,
            "Parts": [
                {"PartNumber": 1, "Size": 5 * MiB, "ETag": '"a"', "ChecksumSHA256": "x"},
                {"PartNumber": 2, "Size": 5 * MiB, "ETag": '"b"'},
            ],
        },
        {"IsTruncated": False, "Parts": [{"PartNumber": 4, "Size": 3, "ETag": '"d"'}]},
    ]
    assert s3.next_marker(pages[0]) == 2
    assert s3.next_marker(pages[1]) is None
    parts = s3.listed_parts(pages)
    assert sorted(parts) == [1, 2, 4]
    assert parts[1].checksum_sha256 == "x" and parts[2].checksum_sha256 is None
    assert s3.usable(parts[1], 5 * MiB)
    assert not s3.usable(parts[4], 5 * MiB)  # uploaded with another split
    assert not s3.usable(None, 5 * MiB)
    assert s3.complete_parts(parts) == {
        "Parts": [
            {"PartNumber": 1, "ETag": '"a"', "ChecksumSHA256": "x"},
            {"PartNumber": 2, "ETag": '"b"'},
            {"PartNumber": 4, "ETag": '"d"'},
        ]
    }


def test_composite_checksum_is_the_sha256_of_the_part_digests() -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    values = [base64.b64encode(a).decode(), base64.b64encode(b).decode()]
    expected = base64.b64encode(hashlib.sha256(a + b).digest()).decode() + "-2"
    assert s3.composite_checksum(values) == expected
    assert s3.composite_checksum([values[0], ""]) == ""


def test_error_xml_and_mapping() -> None:
    body = "<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce</Message></Error>"
    err = s3.parse_error_xml(body)
    assert err == s3.S3ErrorBody("SlowDown", "Reduce")
    assert s3.parse_error_xml("<html/>") is None
    assert s3.parse_error_xml("not xml") is None
    assert s3.error_for("UploadPart 2", 503, "SlowDown", "Reduce").retryable
    assert s3.error_for("UploadPart 2", 500, "").retryable
    assert s3.error_for("UploadPart 2", 400, "BadDigest").retryable
    denied = s3.error_for("UploadPart 2", 403, "AccessDenied", "no")
    assert not denied.retryable and "credentials" in str(denied)
    assert not s3.error_for("CreateMultipartUpload", 409, "BucketAlreadyExists").retryable
    assert isinstance(s3.error_for("ListParts", 404, "NoSuchUpload"), UploadGone)
    assert s3.error_for("x", 503, "", headers={"Retry-After": "7"}).retry_after == 7.0
