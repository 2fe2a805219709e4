"""The polish layer against a real server: sessions survive restarts, the target is the truth."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.support.files import fetch_sha256, make_file
from tests.support.proxy import fault_proxy
from upwell import ResumableUploader
from upwell.engine.planner import MiB


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def no_sleep(_: float) -> None:
    return None


async def test_a_new_uploader_resumes_what_a_failed_one_left(
    upwell_server: str, tmp_path: Path
) -> None:
    size = 8 * MiB + 3
    src = make_file(tmp_path / "movie.mp4", size, seed=1)
    sessions = tmp_path / "sessions"
    async with fault_proxy(upwell_server, cut_at=[int(5.5 * MiB)]) as proxy:
        first = ResumableUploader(
            target=proxy.url(),
            chunk_size=1 * MiB,
            max_parallel=1,
            max_retries=0,
            session_dir=sessions,
        )
        failed = await first.upload_file_resumable(src, session_id="movie")
        assert not failed.success
        status = await first.get_session_status("movie")
        assert status is not None and status["status"] == "paused"
        assert 40 < status["progress_percentage"] < 70
        sent_before = proxy.bytes_up
        # A fresh uploader, as after a restart: it finds the session on disk.
        second = ResumableUploader(
            target=proxy.url(), chunk_size=1 * MiB, max_parallel=1, session_dir=sessions
        )
        result = await second.upload_file_resumable(src, session_id="movie")
        assert result.success, result.error
        resent = proxy.bytes_up - sent_before
        assert resent <= size - 5 * MiB + 1 * MiB + 64 * 1024
        assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))
    status = await second.get_session_status("movie")
    assert status is not None and status["status"] == "complete"
    assert status["progress_percentage"] == 100.0


async def test_the_same_call_again_derives_the_session_and_sends_nothing(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "a.bin", 2 * MiB, seed=2)
    uploader = ResumableUploader(target=upwell_server, session_dir=tmp_path / "s")
    first = await uploader.upload_file_resumable(src)
    again = await uploader.upload_file_resumable(src)
    assert first.success and again.success
    assert again.session_id == first.session_id
    assert again.file_uri == first.file_uri
    assert first.bytes_sent == 2 * MiB and again.bytes_sent == 0
    sessions = await uploader.session_manager.list_sessions()
    assert [s.status for s in sessions] == ["complete"]


async def test_a_file_changed_between_runs_starts_a_new_upload(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "doc.pdf", 3 * MiB, seed=3)
    sessions = tmp_path / "s"
    async with fault_proxy(upwell_server, cut_at=[int(2.2 * MiB)]) as proxy:
        first = ResumableUploader(
            target=proxy.url(),
            chunk_size=1 * MiB,
            max_parallel=1,
            max_retries=0,
            session_dir=sessions,
        )
        assert not (await first.upload_file_resumable(src, session_id="doc")).success
        # Same size and mtime, different bytes: only re-hashing the sent chunks can tell.
        st = src.stat()
        with src.open("r+b") as f:
            f.write(b"X" * 100)
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        second = ResumableUploader(
            target=proxy.url(), chunk_size=1 * MiB, max_parallel=1, session_dir=sessions
        )
        result = await second.upload_file_resumable(src, session_id="doc")
        assert result.success, result.error
        assert await fetch_sha256(result.file_uri or "") == (3 * MiB, sha256_of(src))


async def test_a_file_with_a_new_mtime_gets_a_new_session(
    upwell_server: str, tmp_path: Path
) -> None:
    src = make_file(tmp_path / "log.txt", 1 * MiB, seed=4)
    uploader = ResumableUploader(target=upwell_server, session_dir=tmp_path / "s")
    first = await uploader.upload_file_resumable(src)
    make_file(src, 1 * MiB + 10, seed=5)
    second = await uploader.upload_file_resumable(src)
    assert first.success and second.success
    assert second.session_id != first.session_id
    assert await fetch_sha256(second.file_uri or "") == (1 * MiB + 10, sha256_of(src))


async def test_parallel_parts_resume_after_a_restart(upwell_server: str, tmp_path: Path) -> None:
    size = 12 * MiB + 5
    src = make_file(tmp_path / "par.bin", size, seed=6)
    sessions = tmp_path / "s"
    async with fault_proxy(upwell_server, cut_at=[int(7 * MiB)]) as proxy:
        first = ResumableUploader(
            target=proxy.url(),
            chunk_size=1 * MiB,
            max_parallel=3,
            max_retries=0,
            session_dir=sessions,
        )
        assert not (await first.upload_file_resumable(src, session_id="par")).success
        sent_before = proxy.bytes_up
        second = ResumableUploader(
            target=proxy.url(), chunk_size=1 * MiB, max_parallel=3, session_dir=sessions
        )
        result = await second.upload_file_resumable(src, session_id="par")
        assert result.success, result.error
        # Each of the 3 parts may resend at most its chunk in flight.
        assert proxy.bytes_up - sent_before <= size - (7 * MiB - 3 * MiB) + 3 * MiB
        assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))


async def test_seed_polish_examples_run_as_written(upwell_server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "very_large_file.mp4", 3 * MiB, seed=7)
    uploader = ResumableUploader(
        target=upwell_server,
        bandwidth_limit=50 * 1024 * 1024,
        compression_enabled=True,
        session_dir=tmp_path / ".upload_sessions",
    )
    result = await uploader.upload_file_resumable(str(src), session_id="my-video-upload")
    assert result.success, result.error
    assert result.upload_duration > 0
    sessions = await uploader.session_manager.list_sessions()
    assert [s.session_id for s in sessions] == ["my-video-upload"]
    assert sessions[0].get_progress_percentage() == 100.0
    status = await uploader.get_session_status("my-video-upload")
    assert status is not None and status["status"] == "complete"
    assert await uploader.session_manager.delete_session("my-video-upload")
    assert await uploader.session_manager.cleanup_expired_sessions() == 0


async def test_compressible_chunks_go_gzipped_and_arrive_identical(
    upwell_server: str, tmp_path: Path
) -> None:
    src = tmp_path / "app.log"
    src.write_bytes(
        b"".join(
            b"2026-11-22 12:00:%02d INFO request served in 3 ms\n" % (i % 60)
            for i in range(200_000)
        )
    )
    size = src.stat().st_size
    uploader = ResumableUploader(
        target=upwell_server, chunk_size=1 * MiB, session_dir=tmp_path / "s"
    )
    result = await uploader.upload_file_resumable(src)
    assert result.success, result.error
    assert result.bytes_sent == size
    assert result.compression_ratio < 0.2
    assert await fetch_sha256(result.file_uri or "") == (size, sha256_of(src))


async def test_random_bytes_are_not_compressed(upwell_server: str, tmp_path: Path) -> None:
    src = make_file(tmp_path / "video.mp4", 3 * MiB, seed=8)
    uploader = ResumableUploader(
        target=upwell_server, chunk_size=1 * MiB, session_dir=tmp_path / "s"
    )
    result = await uploader.upload_file_resumable(src)
    assert result.success, result.error
    assert result.compression_ratio == 1.0


async def test_a_finished_file_the_server_lost_is_uploaded_again(
    upwell_server: str, tmp_path: Path
) -> None:
    import aiohttp

    src = make_file(tmp_path / "gone.bin", 1 * MiB, seed=9)
    uploader = ResumableUploader(target=upwell_server, session_dir=tmp_path / "s")
    first = await uploader.upload_file_resumable(src)
    assert first.success and first.file_uri
    async with (
        aiohttp.ClientSession() as s,
        s.delete(first.file_uri, headers={"Tus-Resumable": "1.0.0"}) as r,
    ):
        assert r.status == 204
    again = await uploader.upload_file_resumable(src)
    assert again.success, again.error
    assert again.file_uri != first.file_uri and again.bytes_sent == 1 * MiB
    assert await fetch_sha256(again.file_uri or "") == (1 * MiB, sha256_of(src))


async def test_a_long_running_uploader_cleans_up_expired_sessions_every_hour(
    tmp_path: Path,
) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from upwell.sessions.manager import SessionManager
    from upwell.sessions.session import UploadSession

    now = datetime(2026, 11, 22, tzinfo=UTC)
    waits: list[float] = []
    slept = asyncio.Event()
    wake = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        slept.set()
        await wake.wait()
        wake.clear()

    def expired(sid: str) -> UploadSession:
        return UploadSession(
            sid, tmp_path / "x", 1, "", 1, 1, [], [], now, now, now - timedelta(hours=1)
        )

    manager = SessionManager(tmp_path / "s", now=lambda: now)
    await manager.save_session(expired("first"))
    uploader = ResumableUploader(
        target="http://127.0.0.1:9/files/", session_manager=manager, sleep=fake_sleep
    )
    async with uploader:
        await slept.wait()
        assert await manager.list_sessions() == []
        assert waits == [3600.0]
        slept.clear()
        await manager.save_session(expired("second"))
        wake.set()
        await slept.wait()
        assert await manager.list_sessions() == []
        assert waits == [3600.0, 3600.0]
