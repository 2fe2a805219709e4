"""`upwell upload --to supabase://…` as a user runs it, against the Supabase stand-in: the JSON
complete line names `bucket/path`, an existing object needs --upsert, the key never shows."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.support.files import make_file
from tests.support.supabase import JWT_KEY, supabase_storage

MiB = 1024 * 1024


async def upwell(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "upwell", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_upload_then_refused_then_upserted(tmp_path: Path) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "clip.bin", 13 * MiB, 1)
    async with supabase_storage(tmp_path / "srv") as store:
        env = {
            **os.environ,
            "SUPABASE_URL": store.project_url,
            "SUPABASE_SERVICE_ROLE_KEY": JWT_KEY,
            "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
        }
        target = "supabase://media/dir/"
        code, out, err = await upwell("upload", str(src), "--to", target, "--json", env=env)
        assert code == 0, err
        last = json.loads(out.splitlines()[-1])
        assert last["stage"] == "complete"
        assert last["file_name"] == "media/dir/clip.bin"
        assert last["file_uri"] == f"{store.project_url}/storage/v1/object/media/dir/clip.bin"
        await asyncio.to_thread(make_file, src, 13 * MiB, 2)  # a new version of the file
        code, out, err = await upwell("upload", str(src), "--to", target, env=env)
        assert code == 1
        assert "already exists" in err and "--upsert" in err
        code, out, err = await upwell("upload", str(src), "--to", target, "--upsert", env=env)
        assert code == 0, err
        for text in (out, err):
            assert JWT_KEY not in text
    session_text = "".join(p.read_text() for p in (tmp_path / "sessions").glob("*.json"))
    assert JWT_KEY not in session_text
