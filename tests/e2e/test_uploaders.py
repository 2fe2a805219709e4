"""The seed's foundation and feature layers against a real `upwell serve` on loopback."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from tests.support.files import fetch_sha256, head_status, make_file
from tests.support.proxy import fault_proxy
from tests.support.waits import within
from upwell import ChunkedUploader, ParallelUploader, UploadProgress
from upwell.engine.planner import MiB
from upwell.engine.retry import RetryPolicy  # noqa: F401  (documents the policy under test)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def no_sleep(_: float) -> None:
    return None


async def test_chunked_upload_arrives_byte_identical_with_byte_level_progress(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "clip.mp4", 5 * MiB + 321, seed=1)
    events: list[UploadProgress] = []
    uploader = ChunkedUploader(target=upwell_server, chunk_size=2 * MiB)
    uploader.progress_tracker._min_interval = 0.0
    result = await uploader.upload_file(
        src, display_name="My clip", progress_callback=events.append
    )
    assert result.success, result.error
    assert result.total_size == src.stat().st_size
    assert result.sha256 == sha256_of(src)
    assert result.total_chunks == 3 and result.chunks_uploaded == 3
    assert [c.checksum for c in result.chunks] == [
        hashlib.sha256(src.read_bytes()[c.offset : c.offset + c.size]).hexdigest()
        for c in result.chunks
    ]
    assert result.file_uri is not None
    assert await fetch_sha256(result.file_uri) == (src.stat().st_size, sha256_of(src))
    stages = [e.stage for e in events]
    assert stages[0] == "preparing" and stages[-1] == "complete"
    uploaded = [e.bytes_uploaded for e in events if e.stage == "uploading"]
    assert uploaded == sorted(uploaded)
    # Updates arrive while a chunk streams, not only at chunk boundaries.
    assert any(b % (2 * MiB) not in (0,) and b != src.stat().st_size for b in uploaded)
    assert events[-1].percentage == 100.0 and events[-1].file_uri == result.file_uri


async def test_parallel_upload_uses_concatenation_and_arrives_byte_identical(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "data.bin", 9 * MiB + 7, seed=2)
    async with ParallelUploader(target=upwell_server, chunk_size=1 * MiB, max_parallel=4) as up:
        result = await up.upload_file_parallel(src)
    assert result.success, result.error
    assert result.total_chunks == 10
    assert await fetch_sha256(result.file_uri or "") == (src.stat().st_size, sha256_of(src))


async def test_streaming_upload_yields_progress_dicts_ending_complete(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "s.bin", 3 * MiB, seed=3)
    uploader = ParallelUploader(target=upwell_server, chunk_size=1 * MiB, max_parallel=2)
    seen = [p async for p in uploader.upload_file_streaming(src, task_id="upload_test")]
    assert seen[-1]["stage"] == "complete"
    assert seen[-1]["percentage"] == 100.0
    assert seen[-1]["file_uri"].startswith("http://127.0.0.1:")
    assert {p["task_id"] for p in seen} == {"upload_test"}
    assert await fetch_sha256(seen[-1]["file_uri"]) == (src.stat().st_size, sha256_of(src))


async def test_many_files_upload_at_once_through_one_uploader(
    upwell_server: str, tmp_path: Path
) -> None:
    files = [
        make_file(tmp_path / f"f{i}.bin", (i + 1) * 300_000 + i, seed=10 + i) for i in range(7)
    ]
    async with ParallelUploader(target=upwell_server, max_parallel=2, max_files=5) as up:
        results = await up.upload_files(files)
    assert all(r.success for r in results), [r.error for r in results]
    for f, r in zip(files, results, strict=True):
        assert await fetch_sha256(r.file_uri or "") == (f.stat().st_size, sha256_of(f))


async def test_empty_file_uploads(upwell_server: str, tmp_path: Path) -> None:
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    result = await ChunkedUploader(target=upwell_server).upload_file(src)
    assert result.success, result.error
    assert await fetch_sha256(result.file_uri or "") == (0, hashlib.sha256(b"").hexdigest())


async def test_a_cut_connection_resumes_from_the_servers_offset(
    upwell_server: str, tmp_path: Path
) -> None:
    size = 6 * MiB + 99
    src = make_file(tmp_path / "cut.bin", size, seed=4)
    # Cut twice mid-chunk: the client must ask the server (HEAD) and go on from there.
    async with fault_proxy(upwell_server, cut_at=[int(1.5 * MiB), int(4.2 * MiB)]) as proxy:
        uploader = ChunkedUploader(target=proxy.url(), chunk_size=2 * MiB, sleep=no_sleep)
        events: list[UploadProgress] = []
        result = await uploader.upload_file(src, progress_callback=events.append)
        assert result.success, result.error
        assert proxy.cuts == 2
        # Whoever watches progress is told of each retry, and why.
        retries = [e.message for e in events if e.message.startswith("Retrying chunk")]
        assert len(retries) >= 2 and "connection" in retries[0]
        assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))
    # Only what the server lacked was sent again: at most one chunk per cut beyond the file.
    assert proxy.bytes_up < size + 2 * (2 * MiB) + 64 * 1024


async def test_failed_upload_resumes_in_the_same_process(
    upwell_server: str, tmp_path: Path
) -> None:
    size = 4 * MiB
    src = make_file(tmp_path / "again.bin", size, seed=5)
    async with fault_proxy(upwell_server, cut_at=[int(2.5 * MiB)]) as proxy:
        uploader = ChunkedUploader(target=proxy.url(), chunk_size=1 * MiB, max_retries=0)
        first = await uploader.upload_file(src)
        assert not first.success and first.error
        sent_before = proxy.bytes_up
        second = await uploader.upload_file(src)
        assert second.success, second.error
        # The server keeps whole checksummed chunks: the second run sends the two chunks it
        # lacks (2 MiB and headers), not the whole file again.
        assert proxy.bytes_up - sent_before < 2 * MiB + 64 * 1024
        assert await fetch_sha256(second.file_uri or "") == (size, sha256_of(src))


async def test_missing_file_is_a_clear_failure_not_an_exception(
    upwell_server: str, tmp_path: Path
) -> None:
    result = await ChunkedUploader(target=upwell_server).upload_file(tmp_path / "nope.mp4")
    assert not result.success
    assert result.error is not None and "no such file" in result.error
    assert result.error_type == "SourceError"


async def test_unreachable_target_fails_after_retries(tmp_path: Path) -> None:
    src = make_file(tmp_path / "x.bin", 1000)
    uploader = ChunkedUploader(target="http://127.0.0.1:9/files/", max_retries=2, sleep=no_sleep)
    result = await uploader.upload_file(src)
    assert not result.success
    assert result.error is not None and "connection failed" in result.error


async def test_cancelling_an_upload_terminates_it_at_the_server(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "big.bin", 64 * MiB, seed=6)
    seen_uri: list[str] = []
    started = asyncio.Event()
    uploader = ChunkedUploader(target=upwell_server, chunk_size=1 * MiB)

    def on_progress(p: UploadProgress) -> None:
        if p.stage == "uploading" and p.bytes_uploaded > 2 * MiB:
            started.set()

    job = asyncio.ensure_future(uploader.upload_file(src, progress_callback=on_progress))
    await within(started.wait(), "the upload passing 2 MiB")
    state = next(iter(uploader._unfinished.values()))
    seen_uri.append(state["parts"]["0"])
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    assert await head_status(seen_uri[0]) in (404, 410)


async def test_file_changed_during_upload_fails_clearly(upwell_server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "grow.log", 3 * MiB, seed=7)
    grew = False

    async def grow(p: UploadProgress) -> None:
        nonlocal grew
        if p.stage == "uploading" and not grew:
            grew = True
            await asyncio.to_thread(append, src, b"more")

    uploader = ChunkedUploader(target=upwell_server, chunk_size=1 * MiB)
    result = await uploader.upload_file(src, progress_callback=grow)
    assert not result.success
    assert result.error is not None and "changed" in result.error


async def test_a_part_the_server_holds_other_bytes_of_fails_the_part_check(
    upwell_server: str, tmp_path: Path
) -> None:
    """Someone else wrote the first half of a part: the server's digest of the part, answered
    on the PATCH that completes it, is not the file's, and the client says so (no read-back
    of the file is needed to find out)."""
    import aiohttp

    from upwell.engine.planner import Chunk, Part, Plan
    from upwell.engine.reader import FileSlices, FileSource
    from upwell.errors import IntegrityError
    from upwell.targets.base import Body, SourceInfo
    from upwell.targets.tus import TusTarget

    src = tmp_path / "ab.bin"
    src.write_bytes(b"abcdef")
    chunks = (Chunk(0, 0, 3), Chunk(1, 3, 3))
    plan = Plan(6, 3, (Part(0, 0, 6, chunks[:1]), Part(1, 0, 6, chunks)))
    async with aiohttp.ClientSession() as http:
        target = TusTarget(upwell_server)
        await target.open(http)
        remote = target.new_upload(http, SourceInfo("ab.bin", 6, "x/y", "ab.bin"), plan)
        await remote.create()
        url = remote.state()["parts"]["1"]
        intruder = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        async with http.patch(url, data=b"XYZ", headers=intruder) as r:
            assert r.status == 204
        source = await FileSource.open(src)
        try:
            body = Body(
                offset=3,
                size=3,
                stream=FileSlices(source, 3, 3),
                part_sha256=hashlib.sha256(b"abcdef").digest(),
            )
            try:
                await remote.send(plan.parts[1], body)
            except IntegrityError as exc:
                assert "part 1" in str(exc)
            else:
                raise AssertionError("the mismatched part was accepted")
        finally:
            await source.close()


def flip_first_byte(path: Path) -> None:
    with path.open("r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
