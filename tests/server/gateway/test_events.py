"""Server-Sent Events: one upload's stream and the owner's stream, carrying receive progress
and records, heartbeats, and a reconnect with Last-Event-ID replaying what was missed."""

from __future__ import annotations

import asyncio

from ..conftest import TUS
from .conftest import Client, MakeGateway, tus_upload
from .sse import next_message, until

PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def test_an_upload_stream_starts_with_its_record_then_progress(
    make_gateway: MakeGateway,
) -> None:
    client = await make_gateway(write_batch_bytes=64 * 1024)
    upload_id = await tus_upload(client, b"z" * 300_000, "a.bin", finish=False)
    async with client.get(f"/uploads/{upload_id}/events") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await next_message(resp)
        assert (first.event, first.id, first.data["status"]) == ("record", None, "receiving")
        patched = await client.patch(
            f"/files/{upload_id}", data=b"z" * 300_000, headers={**PATCH, "Upload-Offset": "0"}
        )
        assert patched.status == 204
        seen = await until(resp, lambda m: m.event == "record" and m.data["status"] == "stored")
    progress = [m.data for m in seen if m.event == "progress"]
    assert progress, "no progress event"
    for p in progress:
        assert (p["upload_id"], p["phase"], p["target"]) == (upload_id, "receive", None)
        assert p["bytes_total"] == 300_000 and "percentage" in p and "upload_speed" in p
        assert "file_path" not in p
    offsets = [p["bytes_uploaded"] for p in progress]
    assert offsets == sorted(offsets) and offsets[-1] == 300_000
    ids = [int(m.id) for m in seen if m.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert seen[-1].data["url"].startswith("http://")


async def test_the_owner_stream_carries_every_upload(gateway: Client) -> None:
    async with gateway.get("/uploads/events") as resp:
        assert resp.status == 200
        assert (await next_message(resp)).comment
        first = await tus_upload(gateway, b"one")
        second = await tus_upload(gateway, b"two")
        seen = await until(
            resp,
            lambda m: (
                m.event == "record" and m.data["id"] == second and m.data["status"] == "stored"
            ),
        )
    stored = {m.data["id"] for m in seen if m.event == "record" and m.data["status"] == "stored"}
    assert stored == {first, second}


async def test_a_reconnect_with_last_event_id_replays_what_was_missed(gateway: Client) -> None:
    upload_id = await tus_upload(gateway, b"x" * 10, finish=False)
    async with gateway.get("/uploads/events") as resp:
        await next_message(resp)
        await gateway.patch(
            f"/files/{upload_id}", data=b"x" * 4, headers={**PATCH, "Upload-Offset": "0"}
        )
        seen = await until(resp, lambda m: m.event == "progress")
        last_id = seen[-1].id
    assert last_id is not None
    # While no one listens, the upload finishes.
    await gateway.patch(
        f"/files/{upload_id}", data=b"x" * 6, headers={**PATCH, "Upload-Offset": "4"}
    )
    async with gateway.get("/uploads/events", headers={"Last-Event-ID": last_id}) as resp:
        replayed = await until(resp, lambda m: m.event == "record" and m.data["status"] == "stored")
    ids = [int(m.id) for m in replayed if m.id is not None]
    assert ids and min(ids) > int(last_id)
    assert any(m.event == "progress" and m.data["bytes_uploaded"] == 10 for m in replayed)


async def test_a_quiet_stream_sends_heartbeats(make_gateway: MakeGateway) -> None:
    client = await make_gateway(heartbeat_seconds=0.05)
    async with client.get("/uploads/events") as resp:
        await next_message(resp)
        beat = await asyncio.wait_for(next_message(resp), 5)
    assert beat.comment and beat.data == "heartbeat"


async def test_a_bad_last_event_id_is_400(gateway: Client) -> None:
    resp = await gateway.get("/uploads/events", headers={"Last-Event-ID": "abc"})
    assert resp.status == 400


async def test_an_upload_stream_ends_when_the_upload_is_deleted(gateway: Client) -> None:
    upload_id = await tus_upload(gateway, b"x" * 10, finish=False)
    async with gateway.get(f"/uploads/{upload_id}/events") as resp:
        await next_message(resp)
        assert (await gateway.delete(f"/uploads/{upload_id}")).status == 204
        gone = await next_message(resp)
        assert (gone.event, gone.data["id"], gone.data["deleted"]) == ("record", upload_id, True)
        assert await resp.content.read() == b""
