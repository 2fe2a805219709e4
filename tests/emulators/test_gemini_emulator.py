"""The Gemini Files API emulator: the official google-genai SDK runs against it (that is what
proves it faithful), and the protocol's rules are checked request by request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support.files import make_file
from upwell.emulators.gemini import EMULATOR, FaultPlan, create_gemini_app
from upwell.emulators.runner import emulator_in_thread, running_emulator
from upwell.protocols import google_resumable as gr

KEY = "test-key-123"
KiB = 1024
MiB = 1024 * KiB
G = 256 * KiB


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(data_dir: Path, name: str) -> Path:
    return data_dir / "files" / f"{name.removeprefix('files/')}.bin"


# -- the official SDK (synchronous: it does blocking I/O, so the emulator runs in a thread) --
@pytest.fixture
def emu_dir(tmp_path: Path) -> Path:
    return tmp_path / "emu"


@pytest.fixture
def emulator(emu_dir: Path) -> Iterator[str]:
    with emulator_in_thread(lambda: create_gemini_app(emu_dir, api_key=KEY, granularity=G)) as url:
        yield url


def sdk(url: str, version: str = "v1beta", key: str = KEY) -> genai.Client:
    return genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=url, api_version=version)
    )


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_sdk_upload_get_list_delete_against_the_emulator(
    emulator: str, emu_dir: Path, tmp_path: Path, version: str
) -> None:
    src = make_file(tmp_path / "talk.mp4", 17 * MiB + 3, seed=1)  # three 8 MiB SDK chunks
    client = sdk(emulator, version)
    f = client.files.upload(file=src, config={"display_name": "A talk"})
    assert f.name is not None and f.name.startswith("files/")
    assert f.display_name == "A talk"
    assert f.mime_type == "video/mp4"
    assert f.size_bytes == src.stat().st_size
    assert f.state == types.FileState.PROCESSING
    assert f.source == types.FileSource.UPLOADED
    assert f.uri == f"{emulator}/{version}/files/{f.name.removeprefix('files/')}"
    assert f.create_time is not None and f.expiration_time is not None
    assert f.expiration_time - f.create_time == timedelta(hours=48)
    assert gr.sha256_from_api(f.sha256_hash) == sha256_of(src)
    assert sha256_of(stored(emu_dir, f.name)) == sha256_of(src)

    got = client.files.get(name=f.name)
    assert got.state == types.FileState.ACTIVE and got.size_bytes == f.size_bytes
    assert [x.name for x in client.files.list()] == [f.name]

    client.files.delete(name=f.name)
    with pytest.raises(genai_errors.ClientError) as info:
        client.files.get(name=f.name)
    assert info.value.code == 403
    assert not stored(emu_dir, f.name).exists()


def test_sdk_honours_google_gemini_base_url_from_the_environment(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator)
    src = make_file(tmp_path / "notes.txt", 1000, seed=2)
    client = genai.Client(api_key=KEY)  # keep a reference: a collected client closes its pool
    f = client.files.upload(file=src)
    assert f.mime_type == "text/plain" and f.size_bytes == 1000


def test_sdk_list_pages_through_every_file(emulator: str, tmp_path: Path) -> None:
    client = sdk(emulator)
    names = {
        client.files.upload(file=make_file(tmp_path / f"{i}.txt", 10 + i, seed=i)).name
        for i in range(5)
    }
    pager = client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert {f.name for f in pager} == names


def test_sdk_with_a_wrong_key_gets_the_services_invalid_key_error(emulator: str) -> None:
    client = sdk(emulator, key="wrong")
    with pytest.raises(genai_errors.ClientError) as info:
        client.files.list()
    assert info.value.code == 400
    assert "API key not valid" in str(info.value)


def test_sdk_upload_over_the_size_limit_is_refused_at_start(tmp_path: Path) -> None:
    src = make_file(tmp_path / "big.bin", 2 * MiB, seed=3)
    app = lambda: create_gemini_app(tmp_path / "emu", max_size=1 * MiB)  # noqa: E731
    with emulator_in_thread(app) as url:
        client = sdk(url)
        with pytest.raises(genai_errors.ClientError) as info:
            client.files.upload(file=src, config={"mime_type": "application/octet-stream"})
    assert info.value.code == 400 and "exceeds" in str(info.value)


# -- the protocol, request by request ----------------------------------------------------
Emu = tuple[str, web.Application]


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emu]:
    app = create_gemini_app(tmp_path / "emu", api_key=KEY, granularity=G, processing_polls=2)
    async with running_emulator(app) as url:
        yield url, app


async def start(http: aiohttp.ClientSession, url: str, size: int, name: str = "x.bin") -> str:
    headers = {gr.API_KEY_HEADER: KEY, **gr.start_headers(size, "application/octet-stream")}
    async with http.post(
        f"{url}/upload/v1beta/files", headers=headers, data=gr.start_body(name)
    ) as r:
        assert r.status == 200, await r.text()
        assert r.headers[gr.STATUS] == "active"
        assert r.headers[gr.GRANULARITY] == str(G)
        return r.headers[gr.UPLOAD_URL]


async def command(
    http: aiohttp.ClientSession, upload_url: str, headers: dict[str, str], data: bytes = b""
) -> tuple[int, Any, str]:
    async with http.post(upload_url, headers=headers, data=data) as r:
        return r.status, r.headers, await r.text()


async def test_chunks_must_be_sequential_and_granular_and_query_tells_the_size(
    emu: Emu,
) -> None:
    url, _ = emu
    body = bytes(range(256)) * (3 * G // 256) + b"tail"
    async with aiohttp.ClientSession() as http:
        up = await start(http, url, len(body))
        assert "upload_id=" in up and KEY not in up
        # Not a multiple of the granularity: refused, nothing kept.
        status, h, text = await command(http, up, gr.chunk_headers(0, G + 1, False), body[: G + 1])
        assert status == 400 and "granularity" in json.loads(text)["error"]["message"]
        assert h[gr.SIZE_RECEIVED] == "0"
        status, h, _ = await command(http, up, gr.chunk_headers(0, G, False), body[:G])
        assert status == 200 and h[gr.STATUS] == "active"
        # A wrong offset: 400, and the answer says where the upload stands.
        status, h, text = await command(http, up, gr.chunk_headers(0, G, False), body[:G])
        assert status == 400 and h[gr.SIZE_RECEIVED] == str(G)
        assert json.loads(text)["error"]["status"] == "INVALID_ARGUMENT"
        status, h, _ = await command(http, up, gr.query_headers())
        assert (status, h[gr.STATUS], h[gr.SIZE_RECEIVED]) == (200, "active", str(G))
        # Finalize short of the declared size: refused.
        status, _, _ = await command(http, up, gr.chunk_headers(G, G, True), body[G : 2 * G])
        assert status == 400
        status, h, text = await command(
            http, up, gr.chunk_headers(G, len(body) - G, True), body[G:]
        )
        assert status == 200 and h[gr.STATUS] == "final"
        f = gr.GeminiFile.from_json(json.loads(text))
        assert f.size == len(body) and f.sha256 == hashlib.sha256(body).hexdigest()
        assert f.state == "PROCESSING" and f.display_name == "x.bin"
        # After final: query and a repeated empty finalize answer the File again.
        status, h, text = await command(http, up, gr.query_headers())
        assert h[gr.STATUS] == "final" and gr.GeminiFile.from_json(json.loads(text)).name == f.name
        status, h, _ = await command(http, up, gr.chunk_headers(len(body), 0, True))
        assert status == 200 and h[gr.STATUS] == "final"


async def test_files_go_processing_then_active_after_n_gets(
    emu: Emu,
) -> None:
    url, _ = emu
    async with aiohttp.ClientSession() as http:
        up = await start(http, url, 5)
        _, _, text = await command(http, up, gr.chunk_headers(0, 5, True), b"hello")
        name = json.loads(text)["file"]["name"]
        states = []
        for _ in range(3):
            async with http.get(f"{url}/v1beta/{name}", headers={gr.API_KEY_HEADER: KEY}) as r:
                states.append((await r.json())["state"])
        assert states == ["PROCESSING", "ACTIVE", "ACTIVE"]


async def test_cancel_ends_the_upload_and_its_url(emu: Emu) -> None:
    url, _ = emu
    async with aiohttp.ClientSession() as http:
        up = await start(http, url, 2 * G)
        await command(http, up, gr.chunk_headers(0, G, False), b"x" * G)
        status, h, _ = await command(http, up, gr.cancel_headers())
        assert status == 200 and h[gr.STATUS] == "cancelled"
        status, _, text = await command(http, up, gr.query_headers())
        assert status == 404 and json.loads(text)["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({}, 403, "unregistered callers"),
        ({gr.API_KEY_HEADER: "nope"}, 400, "API key not valid"),
    ],
)
async def test_api_calls_need_the_key(
    emu: Emu, headers: dict[str, str], status: int, words: str
) -> None:
    url, _ = emu
    async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/files", headers=headers) as r:
        assert r.status == status
        assert words in (await r.json())["error"]["message"]


async def test_list_pages_newest_first_and_unknown_files_are_not_revealed(
    emu: Emu,
) -> None:
    url, _ = emu
    key = {gr.API_KEY_HEADER: KEY}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1beta/files", headers=key) as r:
            assert await r.json() == {}
        names = []
        for i in range(3):
            up = await start(http, url, 1)
            _, _, text = await command(http, up, gr.chunk_headers(0, 1, True), bytes([i]))
            names.append(json.loads(text)["file"]["name"])
        seen: list[str] = []
        token = None
        while True:
            params = {"pageSize": "2", **({"pageToken": token} if token else {})}
            async with http.get(f"{url}/v1beta/files", headers=key, params=params) as r:
                page = await r.json()
            seen += [f["name"] for f in page["files"]]
            token = page.get("nextPageToken")
            if not token:
                break
        assert sorted(seen) == sorted(names) and len(seen) == 3
        async with http.get(f"{url}/v1beta/files/doesnotexist", headers=key) as r:
            assert r.status == 403
        async with http.get(f"{url}/v1beta/files/Bad_Name", headers=key) as r:
            assert r.status == 400
        async with http.get(f"{url}/v1beta/files", headers=key, params={"pageToken": "zz"}) as r:
            assert r.status == 400


async def test_a_dropped_chunk_keeps_what_arrived_up_to_a_whole_granule(tmp_path: Path) -> None:
    faults = FaultPlan(drop_after=G + 1000, drop_requests=frozenset({1}))
    app = create_gemini_app(tmp_path / "emu", granularity=G, faults=faults)
    body = b"z" * (4 * G)
    async with running_emulator(app) as url, aiohttp.ClientSession() as http:
        up = await start(http, url, len(body))
        with pytest.raises(aiohttp.ClientError):
            await command(http, up, gr.chunk_headers(0, len(body), True), body)
        status, h, _ = await command(http, up, gr.query_headers())
        assert h[gr.SIZE_RECEIVED] == str(G) and faults.dropped == 1
        status, h, _ = await command(http, up, gr.chunk_headers(G, 3 * G, True), body[G:])
        assert status == 200 and h[gr.STATUS] == "final"


async def test_failing_requests_answer_503_with_retry_after_and_store_nothing(
    tmp_path: Path,
) -> None:
    faults = FaultPlan(fail_every=2, retry_after=0)
    app = create_gemini_app(tmp_path / "emu", granularity=G, faults=faults)
    async with running_emulator(app) as url, aiohttp.ClientSession() as http:
        up = await start(http, url, 2 * G)
        assert (await command(http, up, gr.chunk_headers(0, G, False), b"a" * G))[0] == 200
        status, h, text = await command(http, up, gr.chunk_headers(G, G, True), b"b" * G)
        assert status == 503 and h["Retry-After"] == "0"
        assert json.loads(text)["error"]["status"] == "UNAVAILABLE"
        assert (await command(http, up, gr.query_headers()))[1][gr.SIZE_RECEIVED] == str(G)


async def test_files_and_uploads_survive_an_emulator_restart_and_expire(tmp_path: Path) -> None:
    clock = [datetime(2025, 1, 1, tzinfo=UTC)]

    def make() -> web.Application:
        return create_gemini_app(
            tmp_path / "emu", granularity=G, processing_polls=0, now=lambda: clock[0]
        )

    async with running_emulator(make()) as old_url, aiohttp.ClientSession() as http:
        up = await start(http, old_url, 2 * G)
        await command(http, up, gr.chunk_headers(0, G, False), b"a" * G)
        other = await start(http, old_url, 1)
        _, _, text = await command(http, other, gr.chunk_headers(0, 1, True), b"!")
        name = json.loads(text)["file"]["name"]
    app = make()
    async with running_emulator(app) as url, aiohttp.ClientSession() as http:
        up = up.replace(old_url, url)  # the same upload, at the restarted emulator
        assert app[EMULATOR].uploads  # loaded from disk
        assert (await command(http, up, gr.query_headers()))[1][gr.SIZE_RECEIVED] == str(G)
        key = {gr.API_KEY_HEADER: KEY}
        async with http.get(f"{url}/v1beta/{name}", headers=key) as r:
            assert (await r.json())["state"] == "ACTIVE"
        clock[0] += timedelta(hours=48, seconds=1)
        async with http.get(f"{url}/v1beta/{name}", headers=key) as r:
            assert r.status == 403
        clock[0] += timedelta(days=7)
        assert (await command(http, up, gr.query_headers()))[0] == 404
