"""tuspy and tus-js-client, configured as Supabase's guide shows, upload to the Supabase
stand-in (tests/support/supabase.py): what makes the stand-in faithful. Its refusals are
checked with the same clients: a wrong chunk size, an existing object without upsert, a
missing key."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from tests.support.files import make_file
from tests.support.supabase import JWT_KEY, SECRET_KEY, SupabaseStorage, supabase_storage

pytestmark = pytest.mark.interop
INTEROP = Path(__file__).resolve().parent
MiB = 1024 * 1024


def client_argv(
    client: str, store: SupabaseStorage, src: Path, name: str, *extra: str
) -> list[str]:
    common = ["--endpoint", store.endpoint, "--file", str(src), "--bucket", "media",
              "--object", name, *extra]  # fmt: skip
    if client == "tuspy":
        return [sys.executable, str(INTEROP / "tuspy_supabase.py"), *common]
    return ["node", str(INTEROP / "node" / "supabase_upload.mjs"), *common]


async def run(argv: list[str], key: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SUPABASE_KEY": key},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def stored(store: SupabaseStorage, name: str) -> str:
    upload_id = store.objects[("media", name)]
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{store.endpoint}/{upload_id}", headers=store.auth()) as r,
    ):
        assert r.status == 200
        return hashlib.sha256(await r.read()).hexdigest()


@pytest.fixture(params=["tuspy", "tus-js-client"])
def client(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    request.getfixturevalue("tuspy" if name == "tuspy" else "node_peers")
    return name


@pytest.mark.parametrize("key", [JWT_KEY, SECRET_KEY], ids=["jwt", "sb_secret"])
async def test_official_clients_upload_as_supabase_documents(
    tmp_path: Path, client: str, key: str
) -> None:
    size = 13 * MiB + 5
    src = await asyncio.to_thread(make_file, tmp_path / "v.bin", size, 1)
    async with supabase_storage(tmp_path / "srv", key) as store:
        code, _, err = await run(client_argv(client, store, src, "dir/v.bin"), key)
        assert code == 0, err
        assert await stored(store, "dir/v.bin") == hashlib.sha256(src.read_bytes()).hexdigest()
        # Again without upsert: refused; with it: accepted.
        code, _, err = await run(client_argv(client, store, src, "dir/v.bin"), key)
        assert code != 0
        assert "409" in err or "already exists" in err
        code, _, err = await run(client_argv(client, store, src, "dir/v.bin", "--upsert"), key)
        assert code == 0, err


async def test_the_stand_in_refuses_other_chunk_sizes_and_wrong_keys(
    tmp_path: Path, client: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "v.bin", 9 * MiB, 2)
    async with supabase_storage(tmp_path / "srv") as store:
        code, _, err = await run(
            client_argv(client, store, src, "a.bin", "--chunk-size", str(4 * MiB)), JWT_KEY
        )
        assert code != 0
        assert "400" in err or "6 MiB" in err
        code, _, err = await run(client_argv(client, store, src, "b.bin"), "eyJwrong.key.here")
        assert code != 0
        assert "401" in err or "Invalid" in err
        assert ("media", "a.bin") not in store.objects
        assert ("media", "b.bin") not in store.objects
