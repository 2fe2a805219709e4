"""Forwarding into Gemini emulators: records and events say how it goes; chunks that fail are
retried; attempts that fail are retried with backoff, then marked failed; fan-out to two
targets; dedupe by SHA-256; a server stopped mid-forward finishes it when it starts again."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import aiohttp

from upwell.emulators.gemini import FaultPlan
from upwell.server.app import create_app
from upwell.server.runner import running_server
from upwell.server.settings import ServerSettings

from .conftest import GRANULE, MakeEmulator, MakeGateway, forwards_settled, json_of, tus_upload
from .sse import until

FAST = {"forward_backoff": 0.01, "forward_chunk_size": GRANULE, "real_clock": True}


async def test_a_finished_tus_upload_is_forwarded_with_its_provider_name(
    make_gateway: MakeGateway, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator()
    client = await make_gateway(forwards=(emulator.target(),), **FAST)
    payload = os.urandom(5 * GRANULE + 123)
    async with client.get("/uploads/events") as events:
        upload_id = await tus_upload(client, payload, "talk.mp4", "video/mp4")
        seen = await until(
            events, lambda m: m.event == "record" and m.data["status"] == "forwarded"
        )
    statuses = [m.data["status"] for m in seen if m.event == "record"]
    assert statuses.index("forwarding") < statuses.index("forwarded")
    forward_progress = [
        m.data for m in seen if m.event == "progress" and m.data["phase"] == "forward"
    ]
    assert forward_progress and all(p["target"] == "gemini" for p in forward_progress)
    record = await json_of(await client.get(f"/uploads/{upload_id}"))
    (forward,) = record["forwards"]
    assert forward["state"] == "done" and forward["attempts"] == 1
    assert forward["file_name"].startswith("files/") and forward["file_uri"]
    assert record["sha256"] is not None
    (stored,) = emulator.files()
    assert stored.read_bytes() == payload


async def test_failing_chunks_are_retried_and_the_forward_still_finishes(
    make_gateway: MakeGateway, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(FaultPlan(fail_requests=frozenset({2, 4})))
    client = await make_gateway(forwards=(emulator.target(),), **FAST)
    payload = os.urandom(6 * GRANULE)
    upload_id = await tus_upload(client, payload)
    await forwards_settled(client)
    record = await json_of(await client.get(f"/uploads/{upload_id}"))
    assert record["status"] == "forwarded", record
    assert emulator.faults.failed == 2
    (stored,) = emulator.files()
    assert stored.read_bytes() == payload


async def test_an_attempt_that_fails_is_retried_with_backoff_then_marked_failed(
    make_gateway: MakeGateway, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator(FaultPlan(fail_every=1, fail_status=400))
    client = await make_gateway(
        forwards=(emulator.target(),), forward_attempts=3, forward_retries=0, **FAST
    )
    async with client.get("/uploads/events") as events:
        upload_id = await tus_upload(client, b"q" * GRANULE)
        seen = await until(events, lambda m: m.event == "record" and m.data["status"] == "failed")
    forwards = [m.data["forwards"][0] for m in seen if m.event == "record" and m.data["forwards"]]
    retrying = [f for f in forwards if f["state"] == "pending" and f["error"]]
    assert [f["attempts"] for f in retrying] == [1, 2]
    assert all("retrying in" in f["error"] for f in retrying)
    record = await json_of(await client.get(f"/uploads/{upload_id}"))
    (forward,) = record["forwards"]
    assert (forward["state"], forward["attempts"]) == ("failed", 3)
    assert forward["error"] and "retrying" not in forward["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'upwell_forward_failures_total{target="gemini"} 3.0' in metrics


async def test_fan_out_sends_one_stored_copy_to_two_targets(
    make_gateway: MakeGateway, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    one, two = await make_emulator(), await make_emulator()
    client = await make_gateway(forwards=(one.target("one"), two.target("two")), **FAST)
    source = tmp_path / "doc.pdf"
    payload = os.urandom(3 * GRANULE)
    source.write_bytes(payload)
    data = aiohttp.FormData()
    data.add_field("file", io.BytesIO(payload), filename="doc.pdf")
    resp = await client.post("/upload", data=data)
    lines = [json.loads(line) async for line in resp.content]
    last = lines[-1]
    assert last["stage"] == "complete", last
    assert {f["target"] for f in last["forwards"]} == {"one", "two"}
    assert all(f["state"] == "done" and f["file_name"] for f in last["forwards"])
    targets = {p["target"] for p in lines if p.get("phase") == "forward"}
    assert targets == {"one", "two"}
    assert (
        [f.read_bytes() for f in one.files()] == [payload] == [f.read_bytes() for f in two.files()]
    )


async def test_the_same_bytes_are_not_sent_twice_to_a_target_that_has_them(
    make_gateway: MakeGateway, make_emulator: MakeEmulator
) -> None:
    emulator = await make_emulator()
    client = await make_gateway(forwards=(emulator.target(),), **FAST)
    payload = os.urandom(2 * GRANULE)
    first = await tus_upload(client, payload, "a.bin")
    await forwards_settled(client)
    requests_before = emulator.faults.chunk_requests
    async with client.get("/uploads/events") as events:
        second = await tus_upload(client, payload, "copy-of-a.bin")
        await until(events, lambda m: m.event == "record" and m.data["status"] == "forwarded")
    await forwards_settled(client)
    a = (await json_of(await client.get(f"/uploads/{first}")))["forwards"][0]
    b = (await json_of(await client.get(f"/uploads/{second}")))["forwards"][0]
    assert b["state"] == "deduped"
    assert (b["file_name"], b["file_uri"]) == (a["file_name"], a["file_uri"])
    assert emulator.faults.chunk_requests == requests_before
    assert len(emulator.files()) == 1


async def test_a_server_stopped_mid_forward_finishes_it_after_a_restart(
    make_emulator: MakeEmulator, data_dir: Path
) -> None:
    emulator = await make_emulator(FaultPlan(delay=0.1))
    settings = ServerSettings(
        data_dir=data_dir, port=0, forward_backoff=0.01, forward_chunk_size=GRANULE
    )
    payload = os.urandom(12 * GRANULE)
    async with running_server(settings, create_app(settings, forwards=(emulator.target(),))) as url:
        base = url.rsplit("/files/", 1)[0]
        async with aiohttp.ClientSession() as http:
            upload_id = await _tus(http, url, payload)
            for _ in range(2000):  # until some chunks reached the emulator
                if emulator.faults.chunk_requests >= 3:
                    break
                await asyncio.sleep(0.01)
            record = await (await http.get(f"{base}/uploads/{upload_id}")).json()
            assert record["forwards"][0]["state"] == "running"
    sent_before_restart = emulator.faults.chunk_requests
    assert sent_before_restart < 12
    settings = ServerSettings(data_dir=data_dir, port=0, forward_chunk_size=GRANULE)
    app = create_app(settings, forwards=(emulator.target(),))
    async with running_server(settings, app) as url, aiohttp.ClientSession() as http:
        base = url.rsplit("/files/", 1)[0]
        record: dict[str, Any] = {}
        for _ in range(3000):
            record = await (await http.get(f"{base}/uploads/{upload_id}")).json()
            if record["status"] != "forwarding":
                break
            await asyncio.sleep(0.01)
        assert record["status"] == "forwarded", record
    (stored,) = emulator.files()
    assert stored.read_bytes() == payload
    # Resumed, not started over: the chunks sent before the stop were not all sent again.
    assert emulator.faults.chunk_requests < sent_before_restart + 12


async def _tus(http: aiohttp.ClientSession, url: str, payload: bytes) -> str:
    tus = {"Tus-Resumable": "1.0.0"}
    async with http.post(url, headers={**tus, "Upload-Length": str(len(payload))}) as resp:
        assert resp.status == 201
        location = resp.headers["Location"]
    headers = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    async with http.patch(location, data=payload, headers=headers) as resp:
        assert resp.status == 204
    return location.rsplit("/", 1)[1]


async def test_delete_stops_a_running_forward_and_forgets_it(
    make_gateway: MakeGateway, make_emulator: MakeEmulator, data_dir: Path
) -> None:
    emulator = await make_emulator(FaultPlan(delay=0.1))
    client = await make_gateway(forwards=(emulator.target(),), **FAST)
    async with client.get("/uploads/events") as events:
        upload_id = await tus_upload(client, os.urandom(12 * GRANULE))
        await until(
            events,
            lambda m: (
                m.event == "record"
                and m.data["forwards"]
                and m.data["forwards"][0]["state"] == "running"
            ),
        )
        assert (await client.delete(f"/uploads/{upload_id}")).status == 204
        gone = await until(events, lambda m: m.event == "record" and m.data.get("deleted"))
    assert gone[-1].data["id"] == upload_id
    await forwards_settled(client)
    assert (await client.get(f"/uploads/{upload_id}")).status == 404
    assert not (data_dir / "files" / upload_id).exists()
    assert emulator.files() == []
    assert list((data_dir / "forwards").glob(f"*{upload_id}*")) == []


async def test_an_upload_assembled_from_parts_is_forwarded_from_one_staged_copy(
    make_gateway: MakeGateway, make_emulator: MakeEmulator, data_dir: Path
) -> None:
    """tus parallel parts (what `upwell upload`, tus-js-client and Uppy send for big files)
    are hard links to several files: the forward sends a copy staged once, then drops it."""
    emulator = await make_emulator()
    client = await make_gateway(forwards=(emulator.target(),), **FAST)
    first, second = os.urandom(2 * GRANULE + 7), os.urandom(GRANULE + 3)
    parts = [
        await tus_upload(client, data, headers={"Upload-Concat": "partial"})
        for data in (first, second)
    ]
    resp = await client.post(
        "/files/",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Concat": "final;" + " ".join(f"/files/{p}" for p in parts),
        },
    )
    assert resp.status == 201, await resp.text()
    final_id = resp.headers["Location"].rsplit("/", 1)[1]
    await forwards_settled(client)
    record = await json_of(await client.get(f"/uploads/{final_id}"))
    (forward,) = record["forwards"]
    assert forward["state"] == "done", forward
    (stored,) = emulator.files()
    assert stored.read_bytes() == first + second
    # Partial uploads are never forwarded themselves, and no staged copy is left behind.
    for part in parts:
        assert (await json_of(await client.get(f"/uploads/{part}")))["forwards"] == []
    staged = data_dir / "forwards" / "staged"
    assert staged.is_dir() and list(staged.iterdir()) == []
