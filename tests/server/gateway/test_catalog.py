"""The catalog over HTTP: every tus upload is a record; GET /uploads (newest first, status
filter, cursor), GET and DELETE /uploads/{id}."""

from __future__ import annotations

from pathlib import Path

from ..conftest import TUS, FakeClock
from .conftest import Client, MakeGateway, json_of, tus_upload

RECORD_KEYS = {
    "id", "owner", "filename", "type", "size", "offset", "sha256", "status",
    "created", "expires", "url", "forwards",
}  # fmt: skip


async def test_a_tus_upload_is_a_record_from_creation_to_stored(gateway: Client) -> None:
    upload_id = await tus_upload(gateway, b"x" * 1000, "clip.mp4", "video/mp4", finish=False)
    record = await json_of(await gateway.get(f"/uploads/{upload_id}"))
    assert set(record) == RECORD_KEYS
    assert record["id"] == upload_id
    assert record["owner"] == "anonymous"
    assert (record["filename"], record["type"]) == ("clip.mp4", "video/mp4")
    assert (record["size"], record["offset"], record["status"]) == (1000, 0, "receiving")
    assert record["url"] == str(gateway.make_url(f"/files/{upload_id}"))
    assert record["expires"].endswith("Z") and record["created"].endswith("Z")
    assert record["forwards"] == []

    resp = await gateway.patch(
        f"/files/{upload_id}",
        data=b"x" * 1000,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert resp.status == 204
    record = await json_of(await gateway.get(f"/uploads/{upload_id}"))
    assert (record["offset"], record["status"], record["expires"]) == (1000, "stored", None)


async def test_the_list_is_newest_first_in_pages_with_a_cursor(
    gateway: Client, fake_clock: FakeClock
) -> None:
    ids = []
    for n in range(5):
        ids.append(await tus_upload(gateway, b"abc", f"f{n}.txt"))
        fake_clock.advance(1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await json_of(await gateway.get("/uploads" + query))
        assert len(page["uploads"]) <= 2
        seen += [u["id"] for u in page["uploads"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3


async def test_the_list_filters_by_status(gateway: Client) -> None:
    done = await tus_upload(gateway, b"abc")
    pending = await tus_upload(gateway, b"abcdef", finish=False)
    stored = await json_of(await gateway.get("/uploads?status=stored"))
    receiving = await json_of(await gateway.get("/uploads?status=receiving"))
    assert [u["id"] for u in stored["uploads"]] == [done]
    assert [u["id"] for u in receiving["uploads"]] == [pending]


async def test_bad_queries_are_400_with_a_reason(gateway: Client) -> None:
    for query in ("status=nope", "limit=0", "limit=1000", "limit=x", "cursor=%%%", "cursor=YWJj"):
        resp = await gateway.get(f"/uploads?{query}")
        text = await resp.text()
        assert resp.status == 400, (query, text)
        assert text.strip() and "\n" not in text.strip()


async def test_an_unknown_upload_is_404(gateway: Client) -> None:
    for path in ("/uploads/" + "a" * 32, "/uploads/nothex", "/uploads/" + "a" * 32 + "/events"):
        assert (await gateway.get(path)).status == 404, path
    assert (await gateway.delete("/uploads/" + "b" * 32)).status == 404


async def test_delete_removes_bytes_record_and_tus_upload(gateway: Client, data_dir: Path) -> None:
    upload_id = await tus_upload(gateway, b"secret bytes")
    assert (data_dir / "files" / upload_id).exists()
    resp = await gateway.delete(f"/uploads/{upload_id}")
    assert resp.status == 204
    assert (await gateway.get(f"/uploads/{upload_id}")).status == 404
    assert (await gateway.head(f"/files/{upload_id}", headers=TUS)).status == 404
    assert not (data_dir / "files" / upload_id).exists()
    listed = await json_of(await gateway.get("/uploads"))
    assert listed["uploads"] == []


async def test_the_record_url_follows_a_trusted_proxy(make_gateway: MakeGateway) -> None:
    client = await make_gateway(trust_proxy=True)
    upload_id = await tus_upload(client, b"abc")
    headers = {"X-Forwarded-Host": "files.example.com", "X-Forwarded-Proto": "https"}
    record = await json_of(await client.get(f"/uploads/{upload_id}", headers=headers))
    assert record["url"] == f"https://files.example.com/files/{upload_id}"
