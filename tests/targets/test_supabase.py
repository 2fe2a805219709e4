"""The Supabase Storage preset against a tus server enforcing Supabase's rules
(tests/support/supabase.py): auth headers by key kind, metadata, 6 MiB chunks, one writer,
x-upsert, 409 for an existing object; faults injected by a TCP proxy."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp
import pytest

from tests.support.files import make_file
from tests.support.proxy import fault_proxy
from tests.support.supabase import JWT_KEY, SECRET_KEY, SupabaseStorage, supabase_storage
from upwell.errors import ConfigError
from upwell.targets.resolve import resolve_target
from upwell.targets.supabase import CHUNK_SIZE, SupabaseTarget
from upwell.uploaders import ParallelUploader, ResumableUploader

MiB = 1024 * 1024


async def no_sleep(_: float) -> None:
    return None


async def stored_sha256(store: SupabaseStorage, bucket: str, name: str) -> str:
    upload_id = store.objects[(bucket, name)]
    h = hashlib.sha256()
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{store.endpoint}/{upload_id}", headers=store.auth()) as r,
    ):
        assert r.status == 200, await r.text()
        async for block in r.content.iter_chunked(1 << 20):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("key", [JWT_KEY, SECRET_KEY], ids=["jwt", "sb_secret"])
async def test_upload_sends_6_mib_chunks_metadata_and_the_right_auth(
    tmp_path: Path, key: str
) -> None:
    size = 20 * MiB + 321
    src = await asyncio.to_thread(make_file, tmp_path / "clip.mp4", size, 1)
    async with supabase_storage(tmp_path / "srv", key) as store:
        t = SupabaseTarget(store.project_url, key, "media", "videos/")
        up = ParallelUploader(target=t, max_parallel=4, chunk_size=16 * MiB)
        result = await up.upload_file(src)
        assert result.success, result.error
        assert result.file_name == "media/videos/clip.mp4"
        assert result.file_uri == f"{store.project_url}/storage/v1/object/media/videos/clip.mp4"
        assert await stored_sha256(store, "media", "videos/clip.mp4") == sha256_of(src)
    (upload,) = store.uploads.values()  # one upload: no parallel parts, no concatenation
    assert upload.metadata == {
        "bucketName": "media",
        "objectName": "videos/clip.mp4",
        "contentType": "video/mp4",
        "cacheControl": "3600",
    }
    sizes = [n for _, _, n in store.patches]
    assert sizes == [CHUNK_SIZE] * 3 + [size - 3 * CHUNK_SIZE]
    for req in store.requests:
        assert req["headers"]["apikey"] == key
        if key == JWT_KEY:
            assert req["headers"]["Authorization"] == f"Bearer {key}"
        else:
            assert "Authorization" not in req["headers"]


async def test_an_existing_object_without_upsert_is_a_final_error(tmp_path: Path) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "a.bin", 7 * MiB, 2)
    async with supabase_storage(tmp_path / "srv") as store:
        first = await ParallelUploader(
            target=SupabaseTarget(store.project_url, JWT_KEY, "media", "a.bin")
        ).upload_file(src)
        assert first.success, first.error
        posts = sum(1 for r in store.requests if r["method"] == "POST")
        again = await ParallelUploader(
            target=SupabaseTarget(store.project_url, JWT_KEY, "media", "a.bin"), sleep=no_sleep
        ).upload_file(src)
        assert not again.success
        assert "already exists" in (again.error or "") and "--upsert" in (again.error or "")
        assert JWT_KEY not in (again.error or "")
        assert sum(1 for r in store.requests if r["method"] == "POST") == posts + 1  # no retry
        await asyncio.to_thread(make_file, src, 7 * MiB, 3)
        replaced = await ParallelUploader(
            target=SupabaseTarget(store.project_url, JWT_KEY, "media", "a.bin", upsert=True)
        ).upload_file(src)
        assert replaced.success, replaced.error
        assert await stored_sha256(store, "media", "a.bin") == sha256_of(src)
    creations = [r for r in store.requests if r["method"] == "POST"]
    assert creations[-1]["headers"]["x-upsert"] == "true"
    assert "x-upsert" not in creations[0]["headers"]


async def test_a_dropped_connection_resumes_at_the_servers_offset(tmp_path: Path) -> None:
    size = 19 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "b.bin", size, 4)
    async with supabase_storage(tmp_path / "srv") as store:
        async with fault_proxy(store.project_url + "/", cut_at=[9 * MiB]) as proxy:
            t = SupabaseTarget(f"http://127.0.0.1:{proxy.port}", JWT_KEY, "media", "b.bin")
            result = await ParallelUploader(target=t, sleep=no_sleep).upload_file(src)
        assert result.success, result.error
        assert proxy.cuts == 1
        assert await stored_sha256(store, "media", "b.bin") == sha256_of(src)
    # After the cut, the chunk was resent from the server's offset, still 6 MiB at a time.
    assert all((o + n) % CHUNK_SIZE == 0 or o + n == size for _, o, n in store.patches)


async def test_a_session_resumes_after_a_failure(tmp_path: Path) -> None:
    size = 25 * MiB
    src = await asyncio.to_thread(make_file, tmp_path / "c.bin", size, 5)
    sessions = tmp_path / "sessions"
    async with supabase_storage(tmp_path / "srv") as store:
        async with fault_proxy(store.project_url + "/", cut_at=[13 * MiB]) as proxy:
            t = SupabaseTarget(f"http://127.0.0.1:{proxy.port}", JWT_KEY, "media", "c.bin")
            first = ResumableUploader(target=t, max_retries=0, session_dir=sessions)
            r1 = await first.upload_file_resumable(src)
            assert not r1.success
            held = max(o + n for _, o, n in store.patches)  # acknowledged before the cut
            assert held == 2 * CHUNK_SIZE
            t2 = SupabaseTarget(f"http://127.0.0.1:{proxy.port}", JWT_KEY, "media", "c.bin")
            # Retries enough to outlast the server's stale-writer window, should it not have
            # seen the cut connection yet (a busy machine).
            second = ResumableUploader(target=t2, session_dir=sessions, max_retries=6)
            r2 = await second.upload_file_resumable(src)
        assert r2.success, r2.error
        assert r2.bytes_sent <= size - held
        assert await stored_sha256(store, "media", "c.bin") == sha256_of(src)


def test_missing_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SUPABASE_URL"):
        resolve_target("supabase://media/a.bin", env={"SUPABASE_SERVICE_ROLE_KEY": "k"})
    with pytest.raises(ConfigError, match="SUPABASE_SERVICE_ROLE_KEY"):
        resolve_target("supabase://media/a.bin", env={"SUPABASE_URL": "https://x.supabase.co"})
    t = resolve_target(
        "supabase://media/dir/",
        env={"SUPABASE_URL": "https://x.supabase.co/", "SUPABASE_KEY": SECRET_KEY},
        upsert=True,
    )
    assert isinstance(t, SupabaseTarget)
    assert t.url == "supabase://media/dir/"
    assert t.endpoint == "https://x.supabase.co/storage/v1/upload/resumable"
    assert t.headers() == {"Tus-Resumable": "1.0.0", "apikey": SECRET_KEY, "x-upsert": "true"}
    assert SECRET_KEY not in t.url
