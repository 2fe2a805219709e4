"""`upwell upload --to s3://…` as a user runs it, against moto's S3 server: kill -9 half way and
the rerun sends only the missing parts; `sessions rm` and `sessions cleanup` abort what an
abandoned upload left; usage errors for the new targets."""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.files import make_file
from tests.support.processes import run_upwell
from tests.support.proxy import fault_proxy
from tests.support.services import S3Server

MiB = 1024 * 1024


def new_bucket(s3: S3Server) -> str:
    name = f"upwell-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


def aws_env(s3: S3Server, endpoint: str, sessions: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3.env(),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "UPLOAD_SESSION_DIR": str(sessions),
        "PYTHONUNBUFFERED": "1",
    }


async def start_and_kill(args: list[str], env: dict[str, str], at: float) -> None:
    first = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env)
    assert first.stdout is not None
    async for line in first.stdout:
        if json.loads(line)["bytes_uploaded"] >= at:
            break
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert first.returncode == -signal.SIGKILL


async def test_kill_9_then_rerun_sends_only_the_missing_parts(
    tmp_path: Path, s3_server: S3Server
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    size = 40 * MiB + rng.randrange(MiB)
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", size, seed)
    bucket = new_bucket(s3_server)
    async with fault_proxy(s3_server.endpoint) as proxy:
        env = aws_env(s3_server, f"http://127.0.0.1:{proxy.port}", tmp_path / "sessions")
        args = [
            sys.executable, "-m", "upwell", "upload", str(src), "--to", f"s3://{bucket}/in/",
            "--chunk-size", "5MiB", "--parallel", "2", "--json", "--limit-rate", "30MiB/s",
        ]  # fmt: skip
        await start_and_kill(args, env, rng.uniform(0.3, 0.7) * size)
        sent_before = proxy.bytes_up
        (upload,) = s3_server.client().list_multipart_uploads(Bucket=bucket)["Uploads"]
        held = (
            s3_server.client()
            .list_parts(Bucket=bucket, Key="in/big.bin", UploadId=upload["UploadId"])
            .get("Parts", [])
        )
        assert held, seed
        second = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await second.communicate()
        assert second.returncode == 0, (seed, err.decode())
        resent = proxy.bytes_up - sent_before
    last = json.loads(out.decode().splitlines()[-1])
    assert last["stage"] == "complete"
    assert last["file_name"] == "in/big.bin"
    assert last["file_uri"] == f"s3://{bucket}/in/big.bin"
    missing = size - sum(p["Size"] for p in held)
    assert resent <= missing + 256 * 1024, (seed, resent, missing)
    assert resent >= missing, (seed, resent, missing)
    body = s3_server.client().get_object(Bucket=bucket, Key="in/big.bin")["Body"].read()
    assert body == src.read_bytes(), seed
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.parametrize("how", ["rm", "cleanup"])
async def test_sessions_rm_and_cleanup_abort_the_multipart_upload(
    tmp_path: Path, s3_server: S3Server, how: str
) -> None:
    src = await asyncio.to_thread(make_file, tmp_path / "big.bin", 30 * MiB, 3)
    bucket = new_bucket(s3_server)
    sessions = tmp_path / "sessions"
    env = aws_env(s3_server, s3_server.endpoint, sessions)
    args = [
        sys.executable, "-m", "upwell", "upload", str(src), "--to", f"s3://{bucket}/k.bin",
        "--chunk-size", "5MiB", "--json", "--limit-rate", "20MiB/s",
    ]  # fmt: skip
    await start_and_kill(args, env, 6 * MiB)
    assert s3_server.client().list_multipart_uploads(Bucket=bucket)["Uploads"]
    # A kill -9 mid-write may leave the store's .tmp-*.json beside the session.
    (session_file,) = [p for p in sessions.glob("*.json") if not p.name.startswith(".")]
    if how == "rm":
        done = await asyncio.to_thread(run_upwell, "sessions", "rm", session_file.stem, env=env)
    else:
        data = json.loads(session_file.read_text())
        data["expires_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        session_file.write_text(json.dumps(data))
        done = await asyncio.to_thread(run_upwell, "sessions", "cleanup", env=env)
    assert done.returncode == 0, done.stderr
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not session_file.exists()


@pytest.mark.parametrize(
    ("target", "env", "needle"),
    [
        ("supabase://media/a.bin", {"SUPABASE_SERVICE_ROLE_KEY": "k"}, "SUPABASE_URL"),
        ("supabase://media/a.bin", {"SUPABASE_URL": "http://x"}, "SUPABASE_SERVICE_ROLE_KEY"),
        ("s3://Bad_Bucket/a", {}, "bucket name"),
    ],
)
def test_a_missing_or_bad_setting_is_a_usage_error(
    tmp_path: Path, target: str, env: dict[str, str], needle: str
) -> None:
    src = make_file(tmp_path / "a.bin", 1000)
    clean = {k: "" for k in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")}
    done = run_upwell("upload", str(src), "--to", target, env={**clean, **env})
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_upsert_with_a_tus_target_is_a_usage_error(tmp_path: Path) -> None:
    src = make_file(tmp_path / "a.bin", 1000)
    done = run_upwell("upload", str(src), "--to", "http://127.0.0.1:9/files/", "--upsert")
    assert done.returncode == 2
    assert "--upsert" in done.stderr
