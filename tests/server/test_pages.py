"""The page at `/` and its assets under /static/: served from memory, cached by ETag, open
even when the server wants tokens, and loading nothing from anywhere else."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from upwell.server.pages import STATIC_DIR

from .conftest import MakeClient

Client = TestClient[Any, Any]
TOKEN = "page-token-0123456789"


async def test_the_page_names_the_endpoint_and_limits_itself_to_its_own_origin(
    client: Client,
) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    page = await resp.text()
    assert 'data-tus-endpoint="/files/"' in page
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert ref.startswith("/static/"), f"{ref} is not one of the page's own assets"
        asset = await client.get(ref)
        assert asset.status == 200, ref


async def test_every_asset_in_the_package_is_served_with_its_type(client: Client) -> None:
    types = {".js": "text/javascript", ".css": "text/css"}
    shipped = [p for p in STATIC_DIR.iterdir() if p.suffix in types]
    assert {p.name for p in shipped} >= {"page.js", "tus.js", "events.js", "page.css"}
    for path in shipped:
        resp = await client.get(f"/static/{path.name}")
        assert resp.status == 200
        assert resp.content_type == types[path.suffix]
        assert await resp.read() == path.read_bytes()


async def test_an_unchanged_asset_answers_304_to_its_etag(client: Client) -> None:
    first = await client.get("/static/tus.js")
    etag = first.headers["ETag"]
    again = await client.get("/static/tus.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""


async def test_unknown_assets_and_the_html_itself_are_404_under_static(client: Client) -> None:
    for name in ("nope.js", "index.html", "..%2fpages.py"):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 404, name
        assert (await resp.text()).strip()


async def test_the_page_and_its_assets_need_no_token(make_client: MakeClient) -> None:
    client = await make_client(tokens={TOKEN: "alice"})
    for path in ("/", "/static/page.js"):
        assert (await client.get(path)).status == 200, path
    refused = await client.get("/uploads")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
