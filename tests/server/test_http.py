"""Around the tus endpoint: Location behind proxies, CORS for browsers, health and index."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .conftest import TUS, MakeClient

Client = TestClient[Any, Any]


async def _location(client: Client, **headers: str) -> str:
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "1", **headers})
    assert resp.status == 201
    return str(resp.headers["Location"]).rsplit("/", 1)[0]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"X-Forwarded-Host": "up.example.com", "X-Forwarded-Proto": "https"},
            "https://up.example.com/files",
        ),
        ({"X-Forwarded-Host": "a.example:8443, b.internal"}, "http://a.example:8443/files"),
        (
            {"Forwarded": 'for=1.2.3.4;host="up.example.com";proto=https'},
            "https://up.example.com/files",
        ),
        ({"X-Forwarded-Host": "evil.com/\\@x", "X-Forwarded-Proto": "javascript"}, None),
    ],
)
async def test_location_follows_forwarded_headers_when_trusted(
    make_client: MakeClient, headers: dict[str, str], expected: str | None
) -> None:
    client = await make_client(trust_proxy=True)
    own = f"http://127.0.0.1:{client.port}/files"
    assert await _location(client, **headers) == (expected or own)


async def test_location_ignores_forwarded_headers_by_default(client: Client) -> None:
    location = await _location(
        client, **{"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"}
    )
    assert location == f"http://127.0.0.1:{client.port}/files"


async def test_location_uses_the_host_the_client_asked_for(client: Client) -> None:
    assert await _location(client, Host="uploads.local:9000") == "http://uploads.local:9000/files"


async def test_cors_preflight_allows_tus_methods_and_headers(client: Client) -> None:
    resp = await client.options(
        "/files/",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type",
        },
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "PATCH" in resp.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"tus-resumable", "upload-offset", "upload-length", "upload-metadata"} <= allowed
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


async def test_cors_exposes_tus_headers_to_allowed_origins(client: Client) -> None:
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Origin": "https://app.example"}
    )
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Upload-Expires", "Tus-Resumable"} <= exposed


async def test_cors_refusals_are_readable_by_the_browser(client: Client) -> None:
    resp = await client.head("/files/" + "0" * 32, headers={**TUS, "Origin": "https://a.example"})
    assert resp.status == 404
    assert resp.headers["Access-Control-Allow-Origin"] == "https://a.example"


async def test_cors_ignores_origins_not_configured(make_client: MakeClient) -> None:
    client = await make_client(cors_origins=("https://good.example",))
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Origin": "https://bad.example"}
    )
    assert resp.status == 201
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Origin": "https://good.example"}
    )
    assert resp.headers["Access-Control-Allow-Origin"] == "https://good.example"


async def test_healthz_is_ok(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_index_page_names_the_endpoint(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "/files/" in await resp.text()


async def test_unknown_paths_are_404_with_a_reason(client: Client) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.text()).strip()
