"""The server's running SHA-256: ready when an upload's last byte lands, never read back then.

To prove the digest was not read back from storage, a test changes the stored bytes behind
the server's back after the upload completed: a read-back would answer the changed bytes'
digest, the running one answers what arrived.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.server.conftest import TUS, MakeClient, create_upload, patch, stored


def b64sha(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def tamper(data_dir: Path, path: str) -> None:
    f = data_dir / "files" / path.rsplit("/", 1)[1]
    raw = bytearray(f.read_bytes())
    raw[0] ^= 0xFF
    f.write_bytes(bytes(raw))


async def head_digest(client: TestClient[Any, Any], path: str) -> str | None:
    resp = await client.head(path, headers={**TUS, "Want-Repr-Digest": "sha-256=10"})
    assert resp.status == 200
    return resp.headers.get("Repr-Digest")


async def test_the_last_patch_answers_the_digest_of_what_arrived_in_order(
    client: TestClient[Any, Any], data_dir: Path
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    path = await create_upload(client, len(data))
    for start in range(0, len(data), 300_000):
        resp = await patch(client, path, start, data[start : start + 300_000])
        assert resp.status == 204, await resp.text()
        done = start + 300_000 >= len(data)
        assert ("Repr-Digest" in resp.headers) == done
    assert resp.headers["Repr-Digest"] == b64sha(data)
    tamper(data_dir, path)
    assert stored(data_dir, path) != data
    assert await head_digest(client, path) == b64sha(data)  # kept, not read back


async def test_a_partial_upload_answers_its_digest_on_the_patch_that_completes_it(
    client: TestClient[Any, Any],
) -> None:
    path = await create_upload(client, 6, **{"Upload-Concat": "partial"})
    assert (await patch(client, path, 0, b"abc")).headers.get("Repr-Digest") is None
    resp = await patch(client, path, 3, b"def")
    assert resp.headers["Repr-Digest"] == b64sha(b"abcdef")


async def test_creation_with_upload_of_the_whole_file_answers_its_digest(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post(
        "/files/",
        data=b"hello",
        headers={
            **TUS,
            "Upload-Length": "5",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert resp.status == 201
    assert resp.headers["Repr-Digest"] == b64sha(b"hello")


async def test_after_a_restart_the_digest_is_read_back_from_storage(
    make_client: MakeClient, data_dir: Path
) -> None:
    data = b"0123456789" * 1000
    first = await make_client()
    path = await create_upload(first, len(data))
    assert (await patch(first, path, 0, data[:4000])).status == 204
    await first.close()
    second = await make_client()  # a new process: no running digest for this upload
    resp = await patch(second, path, 4000, data[4000:])
    assert resp.status == 204
    assert "Repr-Digest" not in resp.headers  # not known without reading back...
    assert await head_digest(second, path) == b64sha(data)  # ...which HEAD then does


async def test_a_rejected_checksum_leaves_the_running_digest_as_it_was(
    client: TestClient[Any, Any],
) -> None:
    path = await create_upload(client, 6)
    assert (await patch(client, path, 0, b"abc")).status == 204
    wrong = "sha1 " + base64.b64encode(hashlib.sha1(b"xyz").digest()).decode()
    resp = await patch(client, path, 3, b"def", **{"Upload-Checksum": wrong})
    assert resp.status == 460
    resp = await patch(client, path, 3, b"def")
    assert resp.headers["Repr-Digest"] == b64sha(b"abcdef")


async def test_bytes_kept_only_in_part_drop_the_running_digest() -> None:
    from upwell.server.digests import RunningDigests

    digests = RunningDigests()
    req = digests.begin("u", 0)
    await req.feed([b"abc", b"def"])
    hasher = await req.done()
    assert digests.commit("u", 0, req, hasher, kept=6) == hashlib.sha256(b"abcdef").digest()
    req = digests.begin("u", 6)
    await req.feed([b"ghi"])
    hasher = await req.done()
    assert digests.commit("u", 6, req, hasher, kept=2) is None  # 2 of 3 bytes kept
    assert not digests.begin("u", 8).active  # from here on, only a read-back knows
    assert not digests.begin("v", 5).active  # never seen from its start: nothing to go on
