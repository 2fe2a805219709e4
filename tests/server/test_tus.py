"""The tus 1.0 server: core protocol, extensions and status rules, over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from .conftest import PATCH_HEADERS, TUS, MakeClient, create_upload, patch, raw_request, stored

Client = TestClient[Any, Any]


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


async def assert_refused(resp: ClientResponse, status: int) -> str:
    """A refusal: the status, one plain-text line of reason, and Tus-Resumable."""
    body: str = await resp.text()
    assert resp.status == status, body
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    if resp.method == "HEAD":  # no body to carry the reason
        return body
    assert resp.content_type == "text/plain"
    assert body.strip() and "\n" not in body.strip() and "Traceback" not in body
    return body


# --- discovery --------------------------------------------------------------------------------


async def test_options_describes_the_server_without_tus_resumable(make_client: MakeClient) -> None:
    client = await make_client(max_size=1000)
    resp = await client.options("/files/")
    assert resp.status == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert set(resp.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
        "concatenation-unfinished",
    }
    assert resp.headers["Tus-Max-Size"] == "1000"
    assert set(resp.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256", "md5"}


async def test_options_omits_max_size_when_unlimited(client: Client) -> None:
    resp = await client.options("/files/")
    assert "Tus-Max-Size" not in resp.headers


@pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH", "DELETE"])
async def test_missing_tus_resumable_is_412_with_tus_version(client: Client, method: str) -> None:
    path = await create_upload(client, 10)
    target = "/files/" if method == "POST" else path
    headers = {"Upload-Length": "10", "Content-Type": "application/offset+octet-stream"}
    resp = await client.request(method, target, headers=headers)
    assert resp.status == 412
    assert resp.headers["Tus-Version"] == "1.0.0"
    if method != "HEAD":
        await assert_refused(resp, 412)


async def test_unsupported_tus_version_is_412(client: Client) -> None:
    resp = await client.post("/files/", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "1"})
    await assert_refused(resp, 412)
    assert resp.headers["Tus-Version"] == "1.0.0"


# --- creation ---------------------------------------------------------------------------------


async def test_creation_answers_201_with_an_absolute_location_and_expiry(client: Client) -> None:
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "5"})
    assert resp.status == 201
    location = resp.headers["Location"]
    assert location.startswith(f"http://127.0.0.1:{client.port}/files/")
    assert len(location.rsplit("/", 1)[1]) == 32
    assert resp.headers["Upload-Expires"].endswith("GMT")
    assert resp.headers["Tus-Resumable"] == "1.0.0"


async def test_creation_at_the_endpoint_without_trailing_slash(client: Client) -> None:
    resp = await client.post("/files", headers={**TUS, "Upload-Length": "5"})
    assert resp.status == 201


async def test_creation_keeps_metadata_and_accepts_an_empty_header(client: Client) -> None:
    meta = f"filename {b64('report.pdf')},is_confidential"
    path = await create_upload(client, 3, **{"Upload-Metadata": meta})
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Metadata"] == meta
    empty = await create_upload(client, 3, **{"Upload-Metadata": ""})
    resp = await client.head(empty, headers=TUS)
    assert "Upload-Metadata" not in resp.headers


async def test_creation_over_max_size_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_size=100)
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "101"})
    await assert_refused(resp, 413)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upload-Length": "-1"},
        {"Upload-Length": "1e3"},
        {"Upload-Length": "12abc"},
        {"Upload-Length": "99999999999999999999999"},
        {"Upload-Length": "10", "Upload-Defer-Length": "1"},
        {"Upload-Defer-Length": "2"},
        {"Upload-Length": "10", "Upload-Metadata": "filename !!notbase64!!"},
        {"Upload-Length": "10", "Upload-Metadata": "filename a GVsbG8="},
        {"Upload-Length": "10", "Upload-Concat": "whole"},
    ],
    ids=[
        "no-length",
        "negative",
        "exponent",
        "trailing-junk",
        "huge",
        "length-and-defer",
        "defer-not-1",
        "bad-base64",
        "space-in-value",
        "bad-concat",
    ],
)
async def test_malformed_creation_headers_are_400(
    client: Client, data_dir: Path, headers: dict[str, str]
) -> None:
    resp = await client.post("/files/", headers={**TUS, **headers})
    await assert_refused(resp, 400)
    assert list((data_dir / "files").iterdir()) == []


async def test_creation_with_upload_stores_the_body(client: Client, data_dir: Path) -> None:
    resp = await client.post(
        "/files/",
        data=b"hello",
        headers={**PATCH_HEADERS, "Upload-Length": "11"},
    )
    assert resp.status == 201
    assert resp.headers["Upload-Offset"] == "5"
    path = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    assert stored(data_dir, path) == b"hello"
    resp = await patch(client, path, 5, b" world")
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "11"
    assert "Upload-Expires" not in resp.headers


async def test_creation_with_upload_and_a_bad_checksum_creates_nothing(
    client: Client, data_dir: Path
) -> None:
    resp = await client.post(
        "/files/",
        data=b"hello",
        headers={
            **PATCH_HEADERS,
            "Upload-Length": "5",
            "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode(),
        },
    )
    await assert_refused(resp, 460)
    assert list((data_dir / "files").iterdir()) == []


async def test_creation_with_a_body_of_another_content_type_is_415(client: Client) -> None:
    resp = await client.post(
        "/files/",
        data=b"hello",
        headers={**TUS, "Upload-Length": "5", "Content-Type": "text/plain"},
    )
    await assert_refused(resp, 415)


async def test_zero_length_upload_is_complete_at_once(client: Client) -> None:
    path = await create_upload(client, 0)
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Offset"] == "0"
    assert resp.headers["Upload-Length"] == "0"
    assert "Upload-Expires" not in resp.headers


# --- HEAD and PATCH ---------------------------------------------------------------------------


async def test_head_reports_offset_length_and_no_store(client: Client) -> None:
    path = await create_upload(client, 10)
    await patch(client, path, 0, b"abcd")
    resp = await client.head(path, headers=TUS)
    assert resp.status == 200
    assert resp.headers["Upload-Offset"] == "4"
    assert resp.headers["Upload-Length"] == "10"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Upload-Expires"].endswith("GMT")
    assert resp.headers["Tus-Resumable"] == "1.0.0"


async def test_patches_append_in_order(client: Client, data_dir: Path) -> None:
    path = await create_upload(client, 9)
    for offset, chunk in ((0, b"abc"), (3, b"def"), (6, b"ghi")):
        resp = await patch(client, path, offset, chunk)
        assert resp.status == 204
        assert resp.headers["Upload-Offset"] == str(offset + 3)
        assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert stored(data_dir, path) == b"abcdefghi"


async def test_patch_at_the_wrong_offset_is_409_and_stores_nothing(
    client: Client, data_dir: Path
) -> None:
    path = await create_upload(client, 10)
    await patch(client, path, 0, b"abc")
    resp = await patch(client, path, 2, b"xyz")
    await assert_refused(resp, 409)
    assert stored(data_dir, path) == b"abc"


async def test_patch_with_another_content_type_is_415(client: Client) -> None:
    path = await create_upload(client, 10)
    resp = await client.patch(
        path,
        data=b"abc",
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"},
    )
    await assert_refused(resp, 415)


@pytest.mark.parametrize("offset", ["", "-1", "abc", "1.5", "0x10", "99999999999999999999999"])
async def test_malformed_upload_offset_is_400(client: Client, offset: str) -> None:
    path = await create_upload(client, 10)
    headers = {**PATCH_HEADERS, "Upload-Offset": offset}
    resp = await client.patch(path, data=b"abc", headers=headers)
    await assert_refused(resp, 400)


async def test_patch_without_upload_offset_is_400(client: Client) -> None:
    path = await create_upload(client, 10)
    resp = await client.patch(path, data=b"abc", headers=PATCH_HEADERS)
    await assert_refused(resp, 400)


async def test_patch_past_upload_length_is_413_and_stores_nothing(
    client: Client, data_dir: Path
) -> None:
    path = await create_upload(client, 4)
    resp = await patch(client, path, 0, b"abcdef")
    await assert_refused(resp, 413)
    assert stored(data_dir, path) == b""


async def test_chunked_patch_past_upload_length_is_413_and_stores_nothing(
    client: Client, data_dir: Path
) -> None:
    path = await create_upload(client, 100_000)

    async def body() -> Any:
        for _ in range(4):
            yield b"x" * 40_000

    resp = await patch(client, path, 0, body())
    await assert_refused(resp, 413)
    assert stored(data_dir, path) == b""
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Offset"] == "0"


async def test_patch_to_a_finished_upload_is_413(client: Client) -> None:
    path = await create_upload(client, 3)
    await patch(client, path, 0, b"abc")
    resp = await patch(client, path, 3, b"d")
    await assert_refused(resp, 413)


async def test_unknown_upload_is_404(client: Client) -> None:
    missing = "/files/" + "0" * 32
    await assert_refused(await client.head(missing, headers=TUS), 404)
    await assert_refused(await patch(client, missing, 0, b"x"), 404)
    await assert_refused(await client.delete(missing, headers=TUS), 404)
    await assert_refused(await client.get(missing), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/%2e%2e",
        "/files/%2e%2e%2fupwell.sqlite3",
        "/files/upwell.sqlite3",
        "/files/" + "A" * 32,
        "/files/" + "0" * 31,
        "/files/" + "0" * 32 + ".gz",
    ],
)
async def test_paths_that_are_not_upload_ids_are_404(client: Client, path: str) -> None:
    for method in ("GET", "HEAD", "PATCH", "DELETE"):
        answer = await raw_request(
            client,
            f"{method} {path} HTTP/1.1\nHost: x\nTus-Resumable: 1.0.0\nUpload-Offset: 0\n"
            "Content-Type: application/offset+octet-stream\nContent-Length: 1\n"
            "Connection: close\n",
            b"x",
        )
        assert answer.startswith(b"HTTP/1.1 404 "), (method, path, answer[:200])
        assert b"root:" not in answer


async def test_method_override_turns_post_into_patch_and_delete(client: Client) -> None:
    path = await create_upload(client, 3)
    resp = await client.post(
        path,
        data=b"abc",
        headers={**PATCH_HEADERS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "3"
    resp = await client.post(path, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert resp.status == 204
    assert (await client.head(path, headers=TUS)).status == 404


async def test_a_method_tus_does_not_define_is_405(client: Client) -> None:
    path = await create_upload(client, 3)
    resp = await client.put(path, data=b"abc", headers=TUS)
    await assert_refused(resp, 405)
    assert "PATCH" in resp.headers["Allow"]


# --- defer-length ------------------------------------------------------------------------------


async def test_deferred_length_is_set_by_a_later_patch(client: Client, data_dir: Path) -> None:
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in resp.headers
    assert (await patch(client, path, 0, b"abc")).status == 204
    resp = await patch(client, path, 3, b"de", **{"Upload-Length": "5"})
    assert resp.status == 204
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Length"] == "5"
    assert resp.headers["Upload-Offset"] == "5"
    assert "Upload-Defer-Length" not in resp.headers
    assert stored(data_dir, path) == b"abcde"


async def test_upload_length_cannot_change_once_known(client: Client) -> None:
    path = await create_upload(client, 5)
    resp = await patch(client, path, 0, b"ab", **{"Upload-Length": "6"})
    await assert_refused(resp, 400)


async def test_deferred_upload_over_max_size_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_size=4)
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    await assert_refused(await patch(client, path, 0, b"abcde"), 413)
    await assert_refused(await patch(client, path, 0, b"", **{"Upload-Length": "5"}), 413)


# --- checksum ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_matching_checksum_is_accepted(
    client: Client, data_dir: Path, algorithm: str
) -> None:
    path = await create_upload(client, 6)
    digest = base64.b64encode(hashlib.new(algorithm, b"abcdef").digest()).decode()
    resp = await patch(client, path, 0, b"abcdef", **{"Upload-Checksum": f"{algorithm} {digest}"})
    assert resp.status == 204
    assert stored(data_dir, path) == b"abcdef"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_mismatching_checksum_is_460_and_appends_nothing(
    client: Client, data_dir: Path, algorithm: str
) -> None:
    path = await create_upload(client, 6)
    await patch(client, path, 0, b"ab")
    digest = base64.b64encode(hashlib.new(algorithm, b"XXXX").digest()).decode()
    resp = await patch(client, path, 2, b"cdef", **{"Upload-Checksum": f"{algorithm} {digest}"})
    await assert_refused(resp, 460)
    assert stored(data_dir, path) == b"ab"
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Upload-Offset"] == "2"


async def test_big_body_with_mismatching_checksum_is_rolled_back(
    client: Client, data_dir: Path
) -> None:
    size = 3 * 1024 * 1024 + 17  # several write batches
    path = await create_upload(client, size)
    digest = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    resp = await patch(client, path, 0, b"z" * size, **{"Upload-Checksum": f"sha256 {digest}"})
    await assert_refused(resp, 460)
    assert (data_dir / "files" / path.rsplit("/", 1)[1]).stat().st_size == 0


@pytest.mark.parametrize(
    "header", ["crc32 AAAA", "sha1 !!!", "sha1 " + base64.b64encode(b"short").decode(), "sha1"]
)
async def test_unsupported_or_malformed_checksum_is_400(client: Client, header: str) -> None:
    path = await create_upload(client, 3)
    resp = await patch(client, path, 0, b"abc", **{"Upload-Checksum": header})
    await assert_refused(resp, 400)


# --- termination --------------------------------------------------------------------------------


async def test_delete_removes_the_upload_and_its_bytes(client: Client, data_dir: Path) -> None:
    path = await create_upload(client, 10)
    await patch(client, path, 0, b"abc")
    resp = await client.delete(path, headers=TUS)
    assert resp.status == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert (await client.head(path, headers=TUS)).status == 404
    assert list((data_dir / "files").iterdir()) == []


# --- concatenation ------------------------------------------------------------------------------


async def _partial(client: Client, data: bytes) -> str:
    path = await create_upload(client, len(data), **{"Upload-Concat": "partial"})
    assert (await patch(client, path, 0, data)).status == 204
    return path


async def test_final_upload_is_the_partials_in_order(client: Client, data_dir: Path) -> None:
    first = await _partial(client, b"hello ")
    second = await _partial(client, b"big ")
    third = await _partial(client, b"world")
    head = await client.head(first, headers=TUS)
    assert head.headers["Upload-Concat"] == "partial"
    parts = f"{first} {client.make_url(second)} {third}"
    resp = await client.post(
        "/files/",
        headers={
            **TUS,
            "Upload-Concat": f"final;{parts}",
            "Upload-Metadata": f"filename {b64('a')}",
        },
    )
    assert resp.status == 201, await resp.text()
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    assert stored(data_dir, final) == b"hello big world"
    head = await client.head(final, headers=TUS)
    assert head.headers["Upload-Length"] == "15"
    assert head.headers["Upload-Offset"] == "15"
    assert head.headers["Upload-Concat"].startswith("final;")
    assert [u.rsplit("/", 1)[1] for u in head.headers["Upload-Concat"][6:].split(" ")] == [
        p.rsplit("/", 1)[1] for p in (first, second, third)
    ]
    resp = await client.get(final)
    assert await resp.read() == b"hello big world"


async def test_big_partials_concatenate_byte_identically(client: Client, data_dir: Path) -> None:
    blobs = [bytes([i]) * (1024 * 1024 + i) for i in range(3)]
    paths = [await _partial(client, blob) for blob in blobs]
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths)}
    )
    assert resp.status == 201
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    assert stored(data_dir, final) == b"".join(blobs)


async def test_final_upload_of_a_non_partial_or_unknown_upload_is_400(client: Client) -> None:
    plain = await create_upload(client, 1)
    await patch(client, plain, 0, b"a")
    for parts in (plain, "/files/" + "0" * 32, "/elsewhere/" + "0" * 32, "../../etc/passwd"):
        resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{parts}"})
        await assert_refused(resp, 400)


async def test_final_upload_with_upload_length_is_400(client: Client) -> None:
    part = await _partial(client, b"abc")
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": f"final;{part}", "Upload-Length": "3"}
    )
    await assert_refused(resp, 400)


async def test_final_upload_over_max_size_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_size=5)
    parts = [await _partial(client, b"abc"), await _partial(client, b"def")]
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)}
    )
    await assert_refused(resp, 413)


async def test_patch_to_a_final_upload_is_403(client: Client) -> None:
    part = await _partial(client, b"abc")
    resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{part}"})
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    await assert_refused(await patch(client, final, 3, b"x"), 403)


async def test_a_long_upload_concat_header_is_accepted(client: Client) -> None:
    parts = [await _partial(client, bytes([65 + i % 26])) for i in range(200)]
    urls = " ".join(str(client.make_url(p)) for p in parts)
    assert len(urls) > 8190  # aiohttp's default header limit
    resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{urls}"})
    assert resp.status == 201, await resp.text()


# --- stored file digest (RFC 9530) -----------------------------------------------------------


async def test_head_reports_the_stored_sha256_when_asked(client: Client) -> None:
    data = b"digest me" * 1000
    path = await create_upload(client, len(data))
    want = {**TUS, "Want-Repr-Digest": "sha-256=10"}
    partial = await client.head(path, headers=want)
    assert "Repr-Digest" not in partial.headers  # unfinished: nothing to vouch for
    assert (await patch(client, path, 0, data)).status == 204
    done = await client.head(path, headers=want)
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert done.headers["Repr-Digest"] == f"sha-256=:{expected}:"
    # Kept once computed: later answers carry it without being asked.
    again = await client.head(path, headers=TUS)
    assert again.headers["Repr-Digest"] == f"sha-256=:{expected}:"


async def test_a_concatenated_upload_reports_the_digest_of_the_assembled_bytes(
    client: Client,
) -> None:
    parts = [b"first part|" * 100, b"second part|" * 50]
    paths = []
    for data in parts:
        p = await create_upload(client, len(data), **{"Upload-Concat": "partial"})
        assert (await patch(client, p, 0, data)).status == 204
        paths.append(p)
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths)}
    )
    assert resp.status == 201
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    head = await client.head(final, headers={**TUS, "Want-Repr-Digest": "sha-256=10"})
    expected = base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
    assert head.headers["Repr-Digest"] == f"sha-256=:{expected}:"
