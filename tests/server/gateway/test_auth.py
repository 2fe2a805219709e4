"""Bearer tokens and owners: 401 without a valid token (except the open paths and CORS
preflights); two owners cannot see or touch each other's uploads anywhere."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from upwell.errors import ConfigError
from upwell.server.auth import load_tokens, parse_tokens, warn_if_open

from ..conftest import TUS
from .conftest import Client, MakeGateway, json_of, tus_upload
from .sse import next_message, until

ALICE = "alice-token-0123456789"
BOB = "bob-token-9876543210xx"
TOKENS = {ALICE: "alice", BOB: "bob"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def secured(make_gateway: MakeGateway) -> Client:
    return await make_gateway(tokens=TOKENS)


async def test_without_a_valid_token_every_endpoint_is_401(secured: Client) -> None:
    upload = "/files/" + "a" * 32
    for method, path in [
        ("POST", "/files/"), ("HEAD", upload), ("PATCH", upload), ("GET", upload),
        ("DELETE", upload), ("POST", "/upload"), ("GET", "/uploads"),
        ("GET", "/uploads/" + "a" * 32), ("GET", "/uploads/events"), ("GET", "/metrics"),
    ]:  # fmt: skip
        for headers in ({}, bearer("not-a-known-token-000"), {"Authorization": ALICE}):
            resp = await secured.request(method, path, headers={**TUS, **headers})
            assert resp.status == 401, (method, path, headers)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_open_paths_and_preflights_need_no_token(secured: Client) -> None:
    for path in ("/", "/healthz", "/readyz"):
        assert (await secured.get(path)).status == 200, path
    preflight = await secured.options(
        "/files/",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,upload-length"},
    )  # fmt: skip
    assert preflight.status == 204
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "last-event-id" in allowed


async def test_two_owners_are_isolated_on_tus_catalog_and_events(secured: Client) -> None:
    mine = await tus_upload(secured, b"alice's bytes", headers=bearer(ALICE))
    path = f"/files/{mine}"
    as_bob = {**TUS, **bearer(BOB)}
    assert (await secured.head(path, headers=as_bob)).status == 404
    assert (await secured.get(path, headers=as_bob)).status == 404
    patch_headers = {
        **as_bob,
        "Upload-Offset": "13",
        "Content-Type": "application/offset+octet-stream",
    }
    assert (await secured.patch(path, data=b"x", headers=patch_headers)).status == 404
    assert (await secured.delete(path, headers=as_bob)).status == 404
    assert (await secured.get(f"/uploads/{mine}", headers=as_bob)).status == 404
    assert (await secured.get(f"/uploads/{mine}/events", headers=as_bob)).status == 404
    assert (await secured.delete(f"/uploads/{mine}", headers=as_bob)).status == 404
    assert (await json_of(await secured.get("/uploads", headers=as_bob)))["uploads"] == []
    # Alice still has everything.
    record = await json_of(await secured.get(f"/uploads/{mine}", headers=bearer(ALICE)))
    assert (record["owner"], record["status"]) == ("alice", "stored")
    got = await secured.get(path, headers=bearer(ALICE))
    assert await got.read() == b"alice's bytes"
    # Bob's stream hears only Bob.
    async with secured.get("/uploads/events", headers=bearer(BOB)) as events:
        await next_message(events)
        await tus_upload(secured, b"more of alice", headers=bearer(ALICE))
        bobs = await tus_upload(secured, b"bob's", headers=bearer(BOB))
        seen = await until(events, lambda m: m.event == "record" and m.data["status"] == "stored")
    assert {
        m.data["upload_id" if m.event == "progress" else "id"] for m in seen if not m.comment
    } == {bobs}


async def test_a_partial_of_another_owner_cannot_be_concatenated(secured: Client) -> None:
    resp = await secured.post(
        "/files/",
        headers={**TUS, **bearer(ALICE), "Upload-Length": "3", "Upload-Concat": "partial"},
    )
    part = resp.headers["Location"]
    patched = await secured.patch(
        "/files/" + part.rsplit("/", 1)[1], data=b"abc",
        headers={**TUS, **bearer(ALICE), "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream"},
    )  # fmt: skip
    assert patched.status == 204
    resp = await secured.post(
        "/files/", headers={**TUS, **bearer(BOB), "Upload-Concat": f"final;{part}"}
    )
    assert resp.status == 400
    resp = await secured.post(
        "/files/", headers={**TUS, **bearer(ALICE), "Upload-Concat": f"final;{part}"}
    )
    assert resp.status == 201


def test_tokens_parse_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# owners\n{ALICE} alice\n\n{BOB} bob  # the second\n")
    assert load_tokens(path, {}) == TOKENS
    assert load_tokens(None, {"UPWELL_TOKENS": f"{ALICE} alice,{BOB} bob"}) == TOKENS
    for bad in ("justonefield", "short alice", f"{ALICE} a\n{ALICE} b", f"{ALICE} a b"):
        with pytest.raises(ConfigError):
            parse_tokens(bad, "test")
    with pytest.raises(ConfigError, match="cannot read"):
        load_tokens(tmp_path / "missing", {})


def test_an_open_server_beyond_loopback_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="upwell.server"):
        assert not warn_if_open("127.0.0.1", {})
        assert not warn_if_open("::1", {})
        assert not warn_if_open("0.0.0.0", TOKENS)
        assert warn_if_open("0.0.0.0", {})
    assert "no tokens" in caplog.text and "ANYONE" in caplog.text


async def test_the_token_never_reaches_the_access_log(
    secured: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="upwell.access"):
        upload_id = await tus_upload(secured, b"abc", headers=bearer(ALICE))
        await asyncio.sleep(0)
    assert ALICE not in caplog.text
    assert upload_id not in caplog.text and upload_id[:8] in caplog.text
    assert " alice" in caplog.text
