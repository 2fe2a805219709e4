"""After an error the client asks the server where the upload stands (HEAD); it never resumes
from its own count. @tus/server keeps the bytes of a cut PATCH (it verifies no checksum), so
the server is ahead of what the client saw acknowledged: a client resuming from its own count
would PATCH a stale offset and be answered 409."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import peers
import pytest
from tests.support.proxy import fault_proxy

from upwell import ChunkedUploader, ResumableUploader

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

MiB = 1024 * 1024
SIZE = 5 * MiB + 777
CUT = int(2.5 * MiB)  # in the middle of the third 1 MiB chunk


def stored_sha256(server: peers.Server, file_uri: str) -> str:
    upload_id = file_uri.rstrip("/").rsplit("/", 1)[-1]
    return hashlib.sha256((server.data_dir / upload_id).read_bytes()).hexdigest()


async def test_a_retry_in_the_same_process_asks_the_server(
    tus_node_server: peers.Server, tmp_path: Path
) -> None:
    src = peers.write_random_file(tmp_path / "a.bin", SIZE)
    async with fault_proxy(tus_node_server.url, cut_at=[CUT]) as proxy:
        async with ChunkedUploader(target=proxy.url(), chunk_size=MiB) as uploader:
            result = await uploader.upload_file(src)
        assert result.success, result.error
        assert proxy.cuts == 1
        assert 409 not in proxy.statuses, proxy.statuses
        # The bytes before the cut stayed at the server and were not sent again.
        assert proxy.bytes_up - SIZE < 256 * 1024, proxy.bytes_up - SIZE
    digest = await asyncio.to_thread(peers.sha256_file, src)
    assert await asyncio.to_thread(stored_sha256, tus_node_server, result.file_uri or "") == digest


async def test_a_restarted_upload_asks_the_server(
    tus_node_server: peers.Server, tmp_path: Path
) -> None:
    src = peers.write_random_file(tmp_path / "b.bin", SIZE)
    sessions = tmp_path / "sessions"
    async with fault_proxy(tus_node_server.url, cut_at=[CUT]) as proxy:
        first = ResumableUploader(
            target=proxy.url(), chunk_size=MiB, max_retries=0, session_dir=sessions
        )
        failed = await first.upload_file_resumable(src)
        assert not failed.success, "the cut should have failed a run without retries"
        sent_before = proxy.bytes_up
        del proxy.statuses[:]

        # A new uploader over the same sessions is a restart: nothing kept in memory.
        second = ResumableUploader(target=proxy.url(), chunk_size=MiB, session_dir=sessions)
        result = await second.upload_file_resumable(src)
        assert result.success, result.error
        assert 409 not in proxy.statuses, proxy.statuses
        resent = proxy.bytes_up - sent_before
        assert resent - (SIZE - CUT) < 256 * 1024, (resent, SIZE - CUT)
    digest = await asyncio.to_thread(peers.sha256_file, src)
    assert await asyncio.to_thread(stored_sha256, tus_node_server, result.file_uri or "") == digest
