"""Limits: uploads in flight per owner (429), bytes stored per owner (413), header size, and
the deadline for idle or crawling bodies; and /metrics, /readyz moving with uploads."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ..conftest import TUS
from .conftest import Client, MakeGateway, json_of, tus_upload

PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def _open_patch(client: Client, upload_id: str, declared: int, first: bytes) -> Any:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"PATCH /files/{upload_id} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    writer.write(head.encode() + first)
    await writer.drain()
    return reader, writer


async def _metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


async def test_uploads_in_flight_per_owner_are_limited(make_gateway: MakeGateway) -> None:
    client = await make_gateway(max_uploads_per_owner=1)
    first = await tus_upload(client, b"x" * 1000, finish=False)
    second = await tus_upload(client, b"y" * 10, finish=False)
    reader, writer = await _open_patch(client, first, 1000, b"x" * 10)
    try:
        for _ in range(500):
            if await _metric(client, "upwell_active_uploads") == 1:
                break
            await asyncio.sleep(0.01)
        resp = await client.patch(
            f"/files/{second}", data=b"y" * 10, headers={**PATCH, "Upload-Offset": "0"}
        )
        assert resp.status == 429, await resp.text()
        writer.write(b"x" * 990)
        await writer.drain()
        answer = await reader.readuntil(b"\r\n\r\n")
        assert b" 204 " in answer
    finally:
        writer.close()
        await writer.wait_closed()
    resp = await client.patch(
        f"/files/{second}", data=b"y" * 10, headers={**PATCH, "Upload-Offset": "0"}
    )
    assert resp.status == 204


async def test_bytes_stored_per_owner_are_limited(make_gateway: MakeGateway) -> None:
    client = await make_gateway(max_bytes_per_owner=1000)
    await tus_upload(client, b"a" * 600)
    resp = await client.post("/files/", headers={**TUS, "Upload-Length": "500"})
    assert resp.status == 413 and "limit" in await resp.text()
    assert (await client.post("/files/", headers={**TUS, "Upload-Length": "400"})).status == 201


async def test_a_header_past_the_limit_is_refused(make_gateway: MakeGateway) -> None:
    client = await make_gateway(max_field_size=1024, max_line_size=1024)
    resp = await client.get("/uploads", headers={"X-Big": "a" * 5000})
    assert 400 <= resp.status < 500


async def test_an_idle_body_is_cut_off_keeping_what_arrived(make_gateway: MakeGateway) -> None:
    client = await make_gateway(body_idle_seconds=0.2)
    upload_id = await tus_upload(client, b"x" * 1000, finish=False)
    reader, writer = await _open_patch(client, upload_id, 1000, b"x" * 10)
    try:
        answer = await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert b" 400 " in answer.split(b"\r\n", 1)[0] and b"no body bytes" in answer
    record = await json_of(await client.get(f"/uploads/{upload_id}"))
    assert record["offset"] == 10


async def test_a_crawling_body_is_cut_off(make_gateway: MakeGateway) -> None:
    client = await make_gateway(body_min_rate=10_000, body_rate_window=0.2)
    upload_id = await tus_upload(client, b"x" * 1000, finish=False)
    reader, writer = await _open_patch(client, upload_id, 1000, b"x")
    try:
        answer = b""
        for _ in range(200):  # a byte every 10 ms: ~100 bytes/s
            writer.write(b"x")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(4096), 0.01)
            except TimeoutError:
                continue
            break
    finally:
        writer.close()
        await writer.wait_closed()
    assert b" 400 " in answer and b"bytes/s" in answer


async def test_metrics_move_as_uploads_happen(gateway: Client) -> None:
    await tus_upload(gateway, b"m" * 5000)
    text = await (await gateway.get("/metrics")).text()
    assert 'upwell_upload_requests_total{method="PATCH",status="204"} 1.0' in text
    assert 'upwell_upload_requests_total{method="POST",status="201"} 1.0' in text
    assert "upwell_received_bytes_total 5000.0" in text
    assert "upwell_upload_size_bytes_count 1.0" in text
    assert "upwell_upload_duration_seconds_count 1.0" in text
    assert "upwell_patch_duration_seconds_count 1.0" in text
    assert "upwell_active_uploads 0.0" in text
    assert "upwell_event_loop_lag_seconds" in text
    assert "upwell_checksum_mismatches_total 0.0" in text


async def test_a_checksum_mismatch_is_counted(gateway: Client) -> None:
    upload_id = await tus_upload(gateway, b"abc", finish=False)
    resp = await gateway.patch(
        f"/files/{upload_id}",
        data=b"abc",
        headers={
            **PATCH,
            "Upload-Offset": "0",
            "Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        },
    )
    assert resp.status == 460
    assert await _metric(gateway, "upwell_checksum_mismatches_total") == 1


async def test_readyz_answers_when_state_and_storage_do(gateway: Client) -> None:
    resp = await gateway.get("/readyz")
    assert (resp.status, (await resp.json())["status"]) == (200, "ready")
