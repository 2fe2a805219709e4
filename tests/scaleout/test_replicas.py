"""Any replica serves any request of any upload: three `upwell serve` processes sharing
PostgreSQL and one byte store (a data directory, or S3), driven over real sockets."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.interop.peers import TUS_UPLOAD_JS, missing_node_peers
from tests.support.round_robin import RoundRobinProxy
from tests.support.services import unavailable

from .conftest import Cluster

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
MiB = 1024 * 1024


async def create(session: aiohttp.ClientSession, endpoint: str, length: int) -> str:
    async with session.post(endpoint, headers={**TUS, "Upload-Length": str(length)}) as r:
        assert r.status == 201, await r.text()
        return r.headers["Location"].rsplit("/", 1)[-1]


async def offset_at(session: aiohttp.ClientSession, endpoint: str, upload_id: str) -> int:
    async with session.head(endpoint + upload_id, headers=TUS) as r:
        assert r.status == 200
        return int(r.headers["Upload-Offset"])


async def patch(
    session: aiohttp.ClientSession, endpoint: str, upload_id: str, offset: int, body: object
) -> aiohttp.ClientResponse:
    headers = {**PATCH, "Upload-Offset": str(offset)}
    if isinstance(body, bytes):
        body = io.BytesIO(body)
    async with session.patch(endpoint + upload_id, headers=headers, data=body) as r:
        await r.read()
        return r


async def fetch(session: aiohttp.ClientSession, endpoint: str, upload_id: str) -> bytes:
    async with session.get(endpoint + upload_id) as r:
        assert r.status == 200, await r.text()
        return await r.read()


async def wait_until(predicate: object, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def payload(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


async def test_patches_spread_over_all_replicas_build_one_upload(cluster: Cluster) -> None:
    urls = [r.url for r in cluster.replicas]
    data = payload(14 * MiB + 12345)
    chunk = 2 * MiB + 777  # not aligned to anything: S3 parts and pending tails mix
    async with aiohttp.ClientSession() as session:
        upload_id = await create(session, urls[0], len(data))
        offset, turn = 0, 0
        while offset < len(data):
            url = urls[turn % len(urls)]
            turn += 1
            r = await patch(session, url, upload_id, offset, data[offset : offset + chunk])
            assert r.status == 204
            offset = int(r.headers["Upload-Offset"])
            # Every replica reports the offset just committed through another one.
            assert [await offset_at(session, u, upload_id) for u in urls] == [offset] * 3
        assert turn >= 6
        for url in urls:
            assert await fetch(session, url, upload_id) == data
        async with session.get(
            urls[2] + upload_id, headers={"Range": "bytes=5000000-5999999"}
        ) as r:
            assert r.status == 206
            assert await r.read() == data[5_000_000:6_000_000]


async def test_racing_patches_on_one_offset_never_mix_bytes(cluster: Cluster) -> None:
    urls = [r.url for r in cluster.replicas]
    size = 6 * MiB
    first, second = payload(size, 1), payload(size, 2)
    async with aiohttp.ClientSession() as session:
        upload_id = await create(session, urls[0], size)
        streaming = asyncio.Event()
        go_on = asyncio.Event()

        async def slow_first() -> AsyncIterator[bytes]:
            yield first[:MiB]
            streaming.set()
            await go_on.wait()
            for start in range(MiB, size, MiB):
                yield first[start : start + MiB]

        slow = asyncio.create_task(patch(session, urls[1], upload_id, 0, slow_first()))
        await streaming.wait()
        # The first PATCH streams on replica 1: replica 2 refuses a second writer (423).
        deadline = time.monotonic() + 20
        while not await cluster.writing(upload_id):
            assert time.monotonic() < deadline, "the first PATCH never took the upload"
        rival = await patch(session, urls[2], upload_id, 0, second)
        go_on.set()
        winner = await slow
        assert winner.status == 204
        assert rival.status in (409, 423)
        assert await fetch(session, urls[0], upload_id) == first

        # Both at once on a fresh upload: one wins, the other is refused, nothing mixes.
        upload_id = await create(session, urls[0], size)
        results = await asyncio.gather(
            patch(session, urls[1], upload_id, 0, first),
            patch(session, urls[2], upload_id, 0, second),
        )
        statuses = sorted(r.status for r in results)
        assert statuses[0] == 204 and statuses[1] in (409, 423), statuses
        stored = await fetch(session, urls[0], upload_id)
        assert stored == (first if results[0].status == 204 else second)


async def test_a_replica_killed_mid_patch_leaves_an_honest_offset(cluster: Cluster) -> None:
    victim, survivor = cluster.replicas[1], cluster.replicas[2]
    data = payload(16 * MiB, 3)
    async with aiohttp.ClientSession() as session:
        upload_id = await create(session, cluster.replicas[0].url, len(data))
        hang = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            for start in range(6 * MiB, 12 * MiB, MiB):
                yield data[start : start + MiB]
            await hang.wait()  # the replica dies while this request is still open

        # The first 6 MiB go through the victim and commit; then a PATCH it dies in.
        r = await patch(session, victim.url, upload_id, 0, data[: 6 * MiB])
        assert r.status == 204
        task = asyncio.create_task(patch(session, victim.url, upload_id, 6 * MiB, body()))
        await wait_until(lambda: cluster.stored_size(upload_id) > 6 * MiB)
        os.kill(victim.proc.pid, signal.SIGKILL)
        with pytest.raises(aiohttp.ClientError):
            await task
        hang.set()
        victim.proc.wait(timeout=10)

        # Nothing of the killed request was committed, though some of it reached the store.
        offset = await offset_at(session, survivor.url, upload_id)
        assert offset == 6 * MiB
        # The client goes on through another replica from the offset it is told.
        r = await patch(session, survivor.url, upload_id, offset, data[offset:])
        assert r.status == 204
        assert int(r.headers["Upload-Offset"]) == len(data)
        assert await fetch(session, cluster.replicas[0].url, upload_id) == data


async def test_a_quiet_writer_on_one_replica_is_taken_over_from_another(cluster: Cluster) -> None:
    quiet_on, newcomer_on = cluster.replicas[0], cluster.replicas[1]
    data = payload(8 * MiB, 4)
    async with aiohttp.ClientSession() as session:
        upload_id = await create(session, quiet_on.url, len(data))
        never = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            yield data[: 3 * MiB]
            await never.wait()  # a dead client: the connection stays open, no bytes come

        stalled = asyncio.create_task(patch(session, quiet_on.url, upload_id, 0, stalls()))
        deadline = time.monotonic() + 20
        while not await cluster.writing(upload_id):
            assert time.monotonic() < deadline, "the stalling PATCH never took the upload"
        if cluster.storage == "disk":  # S3 keeps a short tail in memory until the request ends
            await wait_until(lambda: cluster.stored_size(upload_id) >= 2 * MiB)
        # Until the writer has been quiet for 5 s (the default), it keeps the upload.
        refused = 0
        r = await patch(session, newcomer_on.url, upload_id, 0, data)
        while r.status == 423:
            refused += 1
            assert time.monotonic() < deadline + 30, "the quiet writer was never taken over"
            r = await patch(session, newcomer_on.url, upload_id, 0, data)
        assert refused >= 1
        offset = await offset_at(session, cluster.replicas[2].url, upload_id)
        # The quiet writer was stopped and kept what it stored; the newcomer, sent at offset
        # 0, is told the real offset (409) and goes on from there.
        assert offset <= 3 * MiB
        if offset > 0:
            assert r.status == 409
            r = await patch(session, newcomer_on.url, upload_id, offset, data[offset:])
        if cluster.storage == "disk":
            assert offset >= 2 * MiB
        assert r.status == 204
        assert await fetch(session, cluster.replicas[2].url, upload_id) == data
        never.set()
        stopped = await stalled
        assert stopped.status == 400  # "the body ended early; N bytes were stored"


@pytest.mark.interop
@pytest.mark.parametrize("parallel", [1, 3])
async def test_tus_js_client_through_a_round_robin_proxy(
    cluster: Cluster, tmp_path: Path, parallel: int
) -> None:
    """tus-js-client (a peer no one here wrote) uploads through a balancer over the three:
    1 MiB PATCHes one after another, or three partial uploads and their concatenation."""
    reason = missing_node_peers()
    if reason is not None:
        unavailable(reason)
    data = payload(5 * MiB + 12_345, 5)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    proxy = RoundRobinProxy([r.base for r in cluster.replicas])
    async with proxy.running() as base, aiohttp.ClientSession() as session:
        node = await asyncio.create_subprocess_exec(
            "node", str(TUS_UPLOAD_JS), "--endpoint", f"{base}/files/", "--file", str(source),
            "--chunk-size", str(MiB), "--parallel", str(parallel),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(node.communicate(), 90)
        assert node.returncode == 0, err.decode()
        url = json.loads(out)["url"]
        assert url.startswith(base)
        upload_id = url.rsplit("/", 1)[-1]
        # Every replica took part, and every one serves the whole file.
        assert all(proxy.requests[r.base] >= 2 for r in cluster.replicas), proxy.requests
        for r in cluster.replicas:
            assert await fetch(session, r.url, upload_id) == data


async def test_deleting_an_upload_removes_its_bytes_everywhere(cluster: Cluster) -> None:
    urls = [r.url for r in cluster.replicas]
    data = payload(9 * MiB, 6)
    async with aiohttp.ClientSession() as session:
        upload_id = await create(session, urls[0], 20 * MiB)
        r = await patch(session, urls[1], upload_id, 0, data)
        assert r.status == 204
        assert cluster.stored_size(upload_id) > 0  # a file, or a multipart upload with a part
        async with session.delete(urls[2] + upload_id, headers=TUS) as r:
            assert r.status == 204
        assert cluster.stored_size(upload_id) == 0  # S3: the multipart upload was aborted
        if cluster.s3 is not None:
            listed = cluster.s3.client().list_objects_v2(Bucket=cluster.bucket, Prefix="up/")
            assert listed.get("KeyCount", 0) == 0
        async with session.head(urls[0] + upload_id, headers=TUS) as r:
            assert r.status == 404
