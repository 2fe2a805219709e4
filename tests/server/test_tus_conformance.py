"""tus 1.0.0, section by section: the corners of the protocol text a new user tries first.

Each test names the section of https://tus.io/protocols/resumable-upload it checks; the
common cases live in test_tus.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import TUS, MakeClient, create_upload, patch, stored
from .test_tus import assert_refused

Client = TestClient[Any, Any]


# --- Core Protocol: Tus-Resumable, X-HTTP-Method-Override -----------------------------------------


async def test_unsupported_version_is_412_naming_the_supported_ones(client: Client) -> None:
    path = await create_upload(client, 3)
    for method in ("HEAD", "PATCH", "DELETE"):
        resp = await client.request(method, path, headers={"Tus-Resumable": "2.0.0"})
        assert resp.status == 412
        assert resp.headers["Tus-Version"] == "1.0.0"
    assert (await client.head(path, headers=TUS)).status == 200  # nothing was deleted


async def test_method_override_wins_over_a_get(client: Client) -> None:
    resp = await client.get("/files/", headers={"X-HTTP-Method-Override": "OPTIONS"})
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert "creation" in resp.headers["Tus-Extension"].split(",")


async def test_method_override_on_a_get_of_an_upload_is_a_head(client: Client) -> None:
    path = await create_upload(client, 3)
    resp = await client.get(path, headers={**TUS, "X-HTTP-Method-Override": "HEAD"})
    assert resp.status == 200
    assert resp.headers["Upload-Offset"] == "0"
    assert resp.headers["Cache-Control"] == "no-store"


# --- Core Protocol: HEAD -------------------------------------------------------------------------


async def test_head_is_never_cached(client: Client) -> None:
    path = await create_upload(client, 3)
    for _ in range(2):
        resp = await client.head(path, headers=TUS)
        assert resp.headers["Cache-Control"] == "no-store"
    await patch(client, path, 0, b"abc")
    resp = await client.head(path, headers=TUS)
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Upload-Offset"] == "3"


async def test_head_of_a_deferred_length_upload(client: Client) -> None:
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    await patch(client, path, 0, b"ab")
    resp = await client.head(path, headers=TUS)
    assert resp.status == 200
    assert resp.headers["Upload-Offset"] == "2"
    assert resp.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in resp.headers


# --- Core Protocol: PATCH ------------------------------------------------------------------------


async def test_patch_ahead_of_the_offset_is_409_and_stores_nothing(
    client: Client, data_dir: Path
) -> None:
    path = await create_upload(client, 10)
    assert (await patch(client, path, 0, b"abc")).status == 204
    await assert_refused(await patch(client, path, 5, b"fghij"), 409)
    assert stored(data_dir, path) == b"abc"
    assert (await client.head(path, headers=TUS)).headers["Upload-Offset"] == "3"


# --- Protocol Extensions: Creation ----------------------------------------------------------------


async def test_metadata_with_an_empty_pair_is_400(client: Client) -> None:
    for header in ("key dGVzdA==,", ",key dGVzdA==", "a YQ==,,b Yg=="):
        resp = await client.post(
            "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": header}
        )
        await assert_refused(resp, 400)


async def test_creation_over_tus_max_size_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_size=10)
    resp = await client.options("/files/")
    assert resp.headers["Tus-Max-Size"] == "10"
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "11"})
    await assert_refused(resp, 413)
    assert (await client.post("/files/", headers={**TUS, "Upload-Length": "10"})).status == 201


async def test_a_patch_that_would_pass_tus_max_size_is_413(
    make_client: MakeClient, data_dir: Path
) -> None:
    client = await make_client(max_size=5)
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    assert (await patch(client, path, 0, b"abc")).status == 204
    await assert_refused(await patch(client, path, 3, b"def"), 413)
    assert stored(data_dir, path) == b"abc"
    assert (await patch(client, path, 3, b"de")).status == 204


# --- Protocol Extensions: Creation Defer Length ---------------------------------------------------


async def test_an_empty_final_patch_sets_the_length_and_completes(
    client: Client, data_dir: Path
) -> None:
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    assert (await patch(client, path, 0, b"abcd")).status == 204
    resp = await patch(client, path, 4, b"", **{"Upload-Length": "4"})
    assert resp.status == 204
    assert resp.headers["Upload-Offset"] == "4"
    assert "Upload-Expires" not in resp.headers  # complete uploads do not expire
    head = await client.head(path, headers=TUS)
    assert head.headers["Upload-Length"] == "4"
    assert "Upload-Defer-Length" not in head.headers
    assert stored(data_dir, path) == b"abcd"


async def test_a_later_upload_length_below_the_offset_is_400(client: Client) -> None:
    path = await create_upload(client, None, **{"Upload-Defer-Length": "1"})
    await patch(client, path, 0, b"abcd")
    await assert_refused(await patch(client, path, 4, b"", **{"Upload-Length": "3"}), 400)
    assert "Upload-Length" not in (await client.head(path, headers=TUS)).headers


# --- Protocol Extensions: Concatenation (and concatenation-unfinished) ---------------------------


async def test_the_server_offers_concatenation_unfinished(client: Client) -> None:
    resp = await client.options("/files/")
    assert "concatenation-unfinished" in resp.headers["Tus-Extension"].split(",")


async def test_final_upload_of_unknown_parts_is_400(client: Client) -> None:
    known = await create_upload(client, 2, **{"Upload-Concat": "partial"})
    unknown = "/files/" + "a" * 32
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Concat": f"final;{known} {unknown}"}
    )
    await assert_refused(resp, 400)


async def test_final_upload_of_unfinished_parts_completes_when_they_do(
    client: Client, data_dir: Path
) -> None:
    a = await create_upload(client, 3, **{"Upload-Concat": "partial"})
    b = await create_upload(client, 2, **{"Upload-Concat": "partial"})
    await patch(client, a, 0, b"x")
    resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{a} {b}"})
    assert resp.status == 201, await resp.text()
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]

    head = await client.head(final, headers=TUS)
    assert head.status == 200
    assert "Upload-Offset" not in head.headers  # not defined before the concatenation ends
    assert head.headers["Upload-Length"] == "5"  # both parts' lengths are known
    assert head.headers["Upload-Concat"].startswith("final;")
    await assert_refused(await patch(client, final, 0, b"x"), 403)

    assert (await patch(client, a, 1, b"yz")).status == 204
    assert "Upload-Offset" not in (await client.head(final, headers=TUS)).headers
    assert (await patch(client, b, 0, b"12")).status == 204
    head = await client.head(final, headers=TUS)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "5"
    assert stored(data_dir, final) == b"xyz12"
    got = await client.get(final)
    assert await got.read() == b"xyz12"


async def test_an_unfinished_final_upload_whose_part_is_deleted_is_gone(client: Client) -> None:
    a = await create_upload(client, 3, **{"Upload-Concat": "partial"})
    resp = await client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{a}"})
    assert resp.status == 201
    final = "/files/" + resp.headers["Location"].rsplit("/", 1)[1]
    assert (await client.delete(a, headers=TUS)).status == 204
    await assert_refused(await client.head(final, headers=TUS), 410)


async def test_head_of_a_partial_upload_carries_its_offset_and_concat(client: Client) -> None:
    a = await create_upload(client, 3, **{"Upload-Concat": "partial"})
    await patch(client, a, 0, b"ab")
    head = await client.head(a, headers=TUS)
    assert head.headers["Upload-Offset"] == "2"
    assert head.headers["Upload-Concat"] == "partial"


async def test_a_method_override_that_is_not_a_method_is_400(client: Client) -> None:
    for value in ("PATCH; x", "\x80\x81", "G E T"):
        resp = await client.get("/files/", headers={"X-HTTP-Method-Override": value})
        await assert_refused(resp, 400)
