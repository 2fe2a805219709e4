"""Faults on purpose, seeded so a failure replays (the report prints UPWELL_TEST_SEED=...):
a proxy injecting random drops, delays, 503s, truncated answers and stalls between `upwell
upload` and `upwell serve`; kill -9 of the client at 20 points; kill -9 of the server 10
times mid-PATCH, inside the fsync and between fsync and commit. Every run ends byte-identical
or with a one-line error, no offset is ever ahead of the bytes on disk, and no record says
complete for bytes whose SHA-256 differs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import fetch_sha256, make_file
from tests.support.invariants import check_data_dir
from tests.support.processes import UPWELL, free_port
from tests.support.proxy import Chaos, FaultProxy, fault_proxy
from tests.support.waits import within
from upwell.emulators.gemini import EMULATOR, GeminiEmulator, create_gemini_app
from upwell.emulators.runner import running_emulator

MiB = 1024 * 1024
HERE = Path(__file__).resolve().parent
SYNC_HOOK = HERE.parent / "support" / "serve_with_sync_hook.py"

pytestmark = pytest.mark.timeout(300)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPWELL_", "UPLOAD_"))}
    return {**env, "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"), "PYTHONUNBUFFERED": "1",
            **extra}  # fmt: skip


async def start_server(data_dir: Path, port: int) -> asyncio.subprocess.Process:
    """`upwell serve` whose os.fsync reports on stdout (tests/support/serve_with_sync_hook.py)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SYNC_HOOK), "--port", str(port), "--data-dir", str(data_dir),
        "--hold", "0.05",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await within(proc.stdout.readline(), "the server saying it listens", 30)
    assert line.startswith(b"listening"), line
    return proc


async def upload(
    url: str, src: Path, env: dict[str, str], *extra: str, stdout: Any = asyncio.subprocess.PIPE
) -> asyncio.subprocess.Process:
    """`upwell upload --json`; pass a file as `stdout` when nobody reads the progress as it
    comes (a full pipe would stop the client)."""
    return await asyncio.create_subprocess_exec(
        *UPWELL, "upload", str(src), "--to", url, "--json", *extra,
        stdout=stdout, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip


def assert_clear_failure(stderr: bytes) -> None:
    text = stderr.decode(errors="replace").strip()
    assert text and "Traceback" not in text, text
    assert "upload failed" in text, text


async def test_random_faults_between_upload_and_serve(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sources = [
        await asyncio.to_thread(
            make_file, tmp_path / f"f{i}.bin", rng.randrange(MiB, 6 * MiB), seed + i
        )
        for i in range(6)
    ]
    expected = {await asyncio.to_thread(sha256_of, s) for s in sources}
    data_dir = tmp_path / "srv"
    port = free_port()
    server = await start_server(data_dir, port)
    try:
        url = f"http://127.0.0.1:{port}/files/"
        chaos = Chaos(seed, rate=0.5, max_stall=1.5)
        async with fault_proxy(url, chaos=chaos) as proxy:
            env = client_env(tmp_path, UPLOAD_MAX_RETRIES="12")
            for i, src in enumerate(sources):
                parallel = str(1 + i % 2)
                proc = await upload(
                    proxy.url(), src, env, "--chunk-size", "512KiB", "--parallel", parallel
                )
                out, err = await within(proc.communicate(), f"upload {i} to end", 120)
                if proc.returncode == 0:
                    last = json.loads(out.decode().splitlines()[-1])
                    assert last["stage"] == "complete", last
                    direct = url + last["file_uri"].rsplit("/", 1)[1]
                    size = src.stat().st_size
                    assert await fetch_sha256(direct) == (
                        size,
                        await asyncio.to_thread(sha256_of, src),
                    )
                else:
                    assert proc.returncode == 1, err
                    assert_clear_failure(err)
                await asyncio.to_thread(check_data_dir, data_dir, expected)
            assert chaos.applied, "the proxy injected no fault: raise the rate"
    finally:
        server.kill()
        await server.wait()
    await asyncio.to_thread(check_data_dir, data_dir, expected)


async def test_kill_9_of_the_client_at_20_points(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    src = await asyncio.to_thread(make_file, tmp_path / "k.bin", 8 * MiB + rng.randrange(MiB), seed)
    digest = await asyncio.to_thread(sha256_of, src)
    data_dir = tmp_path / "srv"
    port = free_port()
    server = await start_server(data_dir, port)
    url = f"http://127.0.0.1:{port}/files/"
    env = client_env(tmp_path)
    args = ("--chunk-size", "256KiB", "--parallel", "2", "--limit-rate", "24MiB/s")
    try:
        for _ in range(20):
            proc = await upload(url, src, env, *args)
            assert proc.stdout is not None
            lines = rng.randrange(0, 8)

            async def progress(stdout: asyncio.StreamReader, n: int) -> None:
                for _ in range(n):
                    if not await stdout.readline():
                        return

            await within(progress(proc.stdout, lines), "progress lines from the client", 60)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # it may have just finished
                    proc.send_signal(signal.SIGKILL)
            await proc.communicate()
            await asyncio.to_thread(check_data_dir, data_dir, {digest})
        proc = await upload(url, src, env, *args)
        out, err = await within(proc.communicate(), "the last upload to end", 120)
        assert proc.returncode == 0, err.decode()
        last = json.loads(out.decode().splitlines()[-1])
        assert await fetch_sha256(last["file_uri"]) == (src.stat().st_size, digest)
    finally:
        server.kill()
        await server.wait()
    counts = await asyncio.to_thread(check_data_dir, data_dir, {digest})
    assert counts["files"] >= 1, counts


async def test_kill_9_of_the_server_mid_patch_10_times(tmp_path: Path, seed: int) -> None:
    """Each round the server dies at a chosen moment of a PATCH: inside the fsync of the
    upload's bytes, between that fsync and the commit of the offset, or at a random byte.
    The restarted server on the same directory serves the resumed upload to the end."""
    rng = random.Random(seed)
    src = await asyncio.to_thread(make_file, tmp_path / "s.bin", 4 * MiB + rng.randrange(MiB), seed)
    digest = await asyncio.to_thread(sha256_of, src)
    data_dir = tmp_path / "srv"
    env = client_env(tmp_path, UPLOAD_MAX_RETRIES="0")
    args = ("--chunk-size", "256KiB", "--parallel", "2", "--limit-rate", "16MiB/s")
    moments = ["in-fsync", "after-fsync", "random"] * 4
    rng.shuffle(moments)
    done = False
    async with fault_proxy(f"http://127.0.0.1:{free_port()}/files/") as proxy:
        for moment in moments[:10]:
            port = free_port()
            proxy.upstream_port = port
            server = await start_server(data_dir, port)
            with (tmp_path / "progress.ndjson").open("wb") as progress:
                client = await upload(proxy.url(), src, env, *args, stdout=progress)
            try:
                await within(
                    kill_at(server, client, moment, rng, proxy), f"a moment {moment} to kill at", 60
                )
            finally:
                server.kill()
                await server.wait()
            _, err = await within(client.communicate(), "the client to give up", 60)
            out = (tmp_path / "progress.ndjson").read_bytes()
            if client.returncode == 0:
                done = True  # finished before the moment came: nothing more to kill
                break
            assert_clear_failure(err)
            await asyncio.to_thread(check_data_dir, data_dir, {digest})
        if not done:
            port = free_port()
            proxy.upstream_port = port
            server = await start_server(data_dir, port)
            try:
                client = await upload(proxy.url(), src, client_env(tmp_path), *args)
                out, err = await within(client.communicate(), "the resumed upload to end", 120)
                assert client.returncode == 0, err.decode()
            finally:
                server.kill()
                await server.wait()
        last = json.loads(out.decode().splitlines()[-1])
        assert last["stage"] == "complete"
    counts = await asyncio.to_thread(check_data_dir, data_dir, {digest})
    assert counts["files"] == 1, counts  # resumed each time: one file, never a second


async def kill_at(
    server: asyncio.subprocess.Process,
    client: asyncio.subprocess.Process,
    moment: str,
    rng: random.Random,
    proxy: FaultProxy,
) -> None:
    """Return when the server is at `moment` (its hook holds each upload fsync for a while),
    or when the client has ended (it finished, or gave up) before the moment came."""
    ended = asyncio.ensure_future(client.wait())
    try:
        at_moment = asyncio.ensure_future(_moment(server, moment, rng, proxy))
        await asyncio.wait({ended, at_moment}, return_when=asyncio.FIRST_COMPLETED)
        at_moment.cancel()
        await asyncio.gather(at_moment, return_exceptions=True)
    finally:
        ended.cancel()


async def _moment(
    server: asyncio.subprocess.Process, moment: str, rng: random.Random, proxy: FaultProxy
) -> None:
    assert server.stdout is not None
    if moment == "random":
        # At a random byte ahead, or now if no byte has moved for 2 s (the client waits on
        # the server, say between its answers): either way a moment the server is killed in.
        target = proxy.bytes_up + rng.randrange(64 * 1024, 2 * MiB)
        loop = asyncio.get_running_loop()
        seen, since = proxy.bytes_up, loop.time()
        while proxy.bytes_up < target and server.returncode is None:
            await asyncio.sleep(0.005)  # poll the byte count; within() bounds the whole wait
            if proxy.bytes_up != seen:
                seen, since = proxy.bytes_up, loop.time()
            elif loop.time() - since > 2.0:
                return
        return
    want = b"fsync" if moment == "in-fsync" else b"fsynced"
    skip = rng.randrange(0, 4)
    while line := await server.stdout.readline():
        if line.startswith(want + b" ") and b"/files/" in line:
            if skip == 0:
                return
            skip -= 1


GEMINI_KEY = "fault-test-key"


def check_gemini_files(emu: GeminiEmulator, expected_sha256: set[str]) -> int:
    """Every file the emulator finished holds bytes whose SHA-256 it recorded, and is one of
    the files the test uploaded. Returns how many there are."""
    for file_id in list(emu.files):
        resource = emu.files[file_id].resource
        got = sha256_of(emu.file_path(file_id))
        assert got == resource.sha256, f"{file_id}: recorded SHA-256 is not its bytes'"
        assert got in expected_sha256, f"{file_id} is complete with other bytes"
    return len(emu.files)


async def test_random_faults_and_kills_on_the_gemini_path(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    granularity = 256 * 1024
    sources = [
        await asyncio.to_thread(
            make_file, tmp_path / f"g{i}.bin", rng.randrange(MiB, 3 * MiB), seed + i
        )
        for i in range(3)
    ]
    expected = {await asyncio.to_thread(sha256_of, s) for s in sources}
    app = create_gemini_app(tmp_path / "emu", granularity=granularity, processing_polls=0)
    async with running_emulator(app, "127.0.0.1", 0) as url:
        emu = app[EMULATOR]
        chaos = Chaos(seed, rate=0.5, max_stall=1.0)
        async with fault_proxy(url + "/files/", chaos=chaos) as proxy:
            env = client_env(
                tmp_path, GEMINI_API_KEY=GEMINI_KEY, GEMINI_BASE_URL=proxy.url(""),
                UPLOAD_MAX_RETRIES="12",
            )  # fmt: skip
            for i, src in enumerate(sources):
                proc = await upload("gemini", src, env, "--chunk-size", "256KiB")
                if i == 0:  # kill -9 the first one a few times before letting it finish
                    for _ in range(3):
                        assert proc.stdout is not None
                        for _ in range(rng.randrange(1, 5)):
                            await within(proc.stdout.readline(), "progress from the client")
                        if proc.returncode is None:
                            with contextlib.suppress(ProcessLookupError):
                                proc.send_signal(signal.SIGKILL)
                        await proc.communicate()
                        await asyncio.to_thread(check_gemini_files, emu, expected)
                        proc = await upload("gemini", src, env, "--chunk-size", "256KiB")
                out, err = await within(proc.communicate(), f"upload {i} to end", 120)
                if proc.returncode == 0:
                    last = json.loads(out.decode().splitlines()[-1])
                    assert last["stage"] == "complete", last
                    file_id = last["file_name"].rsplit("/", 1)[-1]
                    got = await asyncio.to_thread(sha256_of, emu.file_path(file_id))
                    assert got == await asyncio.to_thread(sha256_of, src)
                else:
                    assert proc.returncode == 1, err
                    assert_clear_failure(err)
                await asyncio.to_thread(check_gemini_files, emu, expected)
            assert chaos.applied, "the proxy injected no fault"
    assert GEMINI_KEY not in "".join(p.read_text() for p in (tmp_path / "sessions").iterdir())
