"""The OpenAI-compatible emulator: the official `openai` SDK runs against it (that is what proves
it faithful: files.create/list/retrieve/delete/content, uploads.create/parts.create/complete,
and the SDK's chunked-upload helper), and its rules are checked request by request."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.support.files import make_file
from upwell.emulators.openai import EMULATOR, FaultPlan, create_openai_app
from upwell.emulators.runner import emulator_in_thread, running_emulator
from upwell.protocols import openai_files as of

KEY = "sk-test-key-123456"
KiB = 1024
MiB = 1024 * KiB


def digest(path: Path, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@pytest.fixture
def emu_dir(tmp_path: Path) -> Path:
    return tmp_path / "emu"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(emu_dir: Path, clock: Clock) -> Iterator[str]:
    with emulator_in_thread(lambda: create_openai_app(emu_dir, api_key=KEY, now=clock)) as url:
        yield url


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """Close every SDK client a test made (their pooled sockets with them)."""
    yield
    while _clients:
        _clients.pop().close()


def sdk(url: str, prefix: str = "/v1", key: str = KEY) -> openai.OpenAI:
    client = openai.OpenAI(api_key=key, base_url=url + prefix, max_retries=0)
    _clients.append(client)
    return client


@pytest.mark.parametrize("prefix", ["/v1", "/api/paas/v4"])
def test_sdk_files_create_list_retrieve_content_delete(
    emulator: str, emu_dir: Path, tmp_path: Path, prefix: str
) -> None:
    client = sdk(emulator, prefix)
    src = tmp_path / "notes.txt"
    src.write_text("line one\nzwei\n三\n" * 1000, encoding="utf-8")
    f = client.files.create(file=src, purpose="file-extract")  # type: ignore[arg-type]
    assert f.id.startswith("file-") and f.object == "file"
    assert f.bytes == src.stat().st_size and f.filename == "notes.txt"
    assert f.purpose == "file-extract"
    stored = emu_dir / "files" / f"{f.id}.bin"
    assert digest(stored) == digest(src)

    bin_src = make_file(tmp_path / "data.bin", 3 * MiB + 5, seed=2)
    g = client.files.create(file=bin_src, purpose="user_data")
    assert g.bytes == bin_src.stat().st_size

    assert client.files.retrieve(f.id).filename == "notes.txt"
    listed = client.files.list()
    assert {x.id for x in listed.data} == {f.id, g.id}
    page = client.files.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    rest = client.files.list(limit=1, after=page.data[0].id)
    assert {page.data[0].id, rest.data[0].id} == {f.id, g.id} and not rest.has_more
    assert [x.id for x in client.files.list(purpose="user_data")] == [g.id]

    # Kimi and GLM: the extracted text as JSON {"content": ...}; other purposes: the bytes.
    extracted = json.loads(client.files.content(f.id).text)
    assert extracted["content"] == src.read_text(encoding="utf-8")
    assert client.files.content(g.id).read() == bin_src.read_bytes()

    deleted = client.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    assert not stored.exists()
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(f.id)
    assert info.value.body is not None and "No such File" in str(info.value.body)


def test_sdk_uploads_create_parts_complete_with_md5(
    emulator: str, emu_dir: Path, tmp_path: Path
) -> None:
    client = sdk(emulator)
    src = make_file(tmp_path / "big.bin", 5 * MiB + 11, seed=3)
    data = src.read_bytes()
    up = client.uploads.create(
        bytes=len(data), filename="big.bin", mime_type="application/octet-stream", purpose="batch"
    )
    assert up.status == "pending" and up.expires_at - up.created_at == 3600
    pieces = [data[i : i + 2 * MiB] for i in range(0, len(data), 2 * MiB)]
    # Parts may arrive in any order; the ids given to complete set the file's order.
    parts = {
        i: client.uploads.parts.create(up.id, data=io.BytesIO(p)) for i, p in enumerate(pieces)
    }
    ids = [parts[i].id for i in range(len(pieces))]
    assert all(p.object == "upload.part" and p.upload_id == up.id for p in parts.values())
    with pytest.raises(openai.BadRequestError, match="md5"):
        client.uploads.complete(up.id, part_ids=ids, md5="0" * 32)
    with pytest.raises(openai.BadRequestError, match="bytes"):
        client.uploads.complete(up.id, part_ids=ids[:-1])
    done = client.uploads.complete(up.id, part_ids=ids, md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed" and done.file is not None
    assert done.file.bytes == len(data) and done.file.purpose == "batch"
    assert (emu_dir / "files" / f"{done.file.id}.bin").read_bytes() == data
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.uploads.parts.create(up.id, data=b"more")
    assert not (emu_dir / "uploads" / up.id).exists()  # parts are gone once assembled


def test_sdk_chunked_upload_helper(emulator: str, emu_dir: Path, tmp_path: Path) -> None:
    client = sdk(emulator)
    src = make_file(tmp_path / "helper.bin", 7 * MiB + 1, seed=4)
    done = client.uploads.upload_file_chunked(
        file=src, mime_type="application/octet-stream", purpose="batch", part_size=3 * MiB
    )
    assert done.status == "completed" and done.file is not None
    assert digest(emu_dir / "files" / f"{done.file.id}.bin") == digest(src)


def test_sdk_cancel_and_expiry(emulator: str, clock: Clock, tmp_path: Path) -> None:
    client = sdk(emulator)
    up = client.uploads.create(
        bytes=10, filename="a.bin", mime_type="application/octet-stream", purpose="batch"
    )
    cancelled = client.uploads.cancel(up.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.parts.create(up.id, data=b"0123456789")

    late = client.uploads.create(
        bytes=4, filename="b.bin", mime_type="application/octet-stream", purpose="batch"
    )
    part = client.uploads.parts.create(late.id, data=b"abcd")
    clock.now += 3600  # the hour is over
    with pytest.raises(openai.BadRequestError, match="expired"):
        client.uploads.complete(late.id, part_ids=[part.id])
    with pytest.raises(openai.NotFoundError):
        client.uploads.complete("upload_nope", part_ids=[])


def test_sdk_sees_key_errors_and_limits(emu_dir: Path, tmp_path: Path) -> None:
    with emulator_in_thread(
        lambda: create_openai_app(emu_dir, api_key=KEY, max_file_size=1 * MiB, max_part_size=KiB)
    ) as url:
        with pytest.raises(openai.AuthenticationError) as info:
            sdk(url, key="sk-wrong-key-000000").files.list()
        assert info.value.code == "invalid_api_key"
        assert "sk-wrong-key-000000" not in str(info.value)
        client = sdk(url)
        big = make_file(tmp_path / "big.bin", MiB + 1, seed=5)
        with pytest.raises(openai.APIStatusError) as too_big:
            client.files.create(file=big, purpose="user_data")
        assert too_big.value.status_code == 413
        assert list(client.files.list()) == []  # nothing half-stored
        up = client.uploads.create(
            bytes=2 * KiB, filename="p.bin", mime_type="application/octet-stream", purpose="batch"
        )
        with pytest.raises(openai.BadRequestError, match="at most 1024"):
            client.uploads.parts.create(up.id, data=b"x" * (KiB + 1))
        with pytest.raises(openai.BadRequestError, match="purpose"):
            client.files.create(file=io.BytesIO(b"x"), purpose="")  # type: ignore[arg-type]


async def test_glm_path_answers_glm_key_errors_and_faults(emu_dir: Path) -> None:
    faults = FaultPlan(fail_requests=frozenset({1}), drop_after=100, drop_requests=frozenset({2}))
    app = create_openai_app(emu_dir, api_key=KEY, faults=faults)
    async with running_emulator(app) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/paas/v4/files") as r:
            assert r.status == 401
            err = of.parse_error(await r.text())
            assert err.code == "1001" and of.is_key_error(r.status, err)
        frame = of.multipart_frame("file", "a.txt", "text/plain", {"purpose": "file-extract"})
        body = frame.head + b"y" * 1000 + frame.tail
        headers = {**of.auth_headers(KEY), "Content-Type": frame.content_type}
        async with http.post(f"{url}/v1/files", data=body, headers=headers) as r:
            assert r.status == 503 and of.parse_error(await r.text()).message
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{url}/v1/files", data=body, headers=headers) as r:
                await r.read()
        async with http.post(f"{url}/v1/files", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            f = of.parse_file(await r.text())
        emu = app[EMULATOR]
        assert f.bytes == 1000 and list(emu.files) == [f.id]
        assert (faults.failed, faults.dropped) == (1, 1)
        assert not list((emu_dir / "files").glob(".incoming-*"))
