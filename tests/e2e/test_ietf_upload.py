"""`upwell upload` speaking the IETF resumable-upload draft (`--to ietf+http://...`) to
`upwell serve`: byte-identical, verified whole by Repr-Digest, resuming by HEAD after a cut."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from tests.support.files import fetch_sha256, make_file
from tests.support.processes import serve_process_async
from tests.support.proxy import fault_proxy
from tests.support.waits import within

MiB = 1024 * 1024


async def run_upload(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "upwell", "upload", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await within(proc.communicate(), "upwell upload to end", 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_upwell_upload_speaks_ietf_to_upwell_serve(tmp_path: Path) -> None:
    size = 5 * MiB + 321
    src = await asyncio.to_thread(make_file, tmp_path / "ietf.bin", size, 31)
    digest = await asyncio.to_thread(lambda: hashlib.sha256(src.read_bytes()).hexdigest())
    env = {**os.environ, "UPLOAD_SESSION_DIR": str(tmp_path / "sessions")}
    async with serve_process_async(tmp_path / "srv") as (url, _pid):
        async with fault_proxy(url, cut_at=[int(2.5 * MiB)]) as proxy:
            target = "ietf+" + proxy.url()
            code, out, err = await run_upload(
                str(src), "--to", target, "--chunk-size", "1MiB", "--json", env=env
            )
            assert code == 0, err
            assert proxy.cuts == 1
            # Two appends at most in flight resent after the cut, never the whole file.
            assert proxy.bytes_up < size + 2 * MiB, proxy.bytes_up
            assert 409 not in proxy.statuses, proxy.statuses
        last = json.loads(out.splitlines()[-1])
        assert last["stage"] == "complete"
        direct = url + last["file_uri"].rsplit("/", 1)[1]
        assert await fetch_sha256(direct) == (size, digest)
