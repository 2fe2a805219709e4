"""The official MCP Python SDK's client against a real `upwell mcp` process over stdio:
uploads to an in-process `upwell serve` (tus) and the Gemini emulator, progress, cancel and
resume, refusals, and no key in anything a client sees."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from tests.support.files import fetch_sha256, make_file
from tests.support.services import S3Server
from upwell.emulators.gemini import create_gemini_app
from upwell.emulators.runner import running_emulator

from .support import TOOLS, UPLOAD_RESULT_KEYS, UPWELL_MCP, check_progress

KEY = "py-mcp-secret-key-7f3a"


@contextlib.asynccontextmanager
async def client(root: Path, env: dict[str, str], *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=UPWELL_MCP[0], args=[*UPWELL_MCP[1:], "--root", str(root), *extra], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_tools_are_listed_with_input_and_output_schemas(
    root: Path, host_env: dict[str, str]
) -> None:
    async with client(root, host_env) as session:
        listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) >= TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description
        # No tool takes a key: keys come from the server's environment only.
        assert not any("key" in name.lower() for name in tool.input_schema.get("properties", {}))
    upload = tools["upload_file"]
    assert sorted(upload.input_schema["required"]) == ["path", "to"]
    assert set(upload.input_schema["properties"]) == {
        "path", "to", "display_name", "purpose", "session_id",
    }  # fmt: skip
    assert set(upload.output_schema["properties"]) == UPLOAD_RESULT_KEYS


async def test_upload_to_tus_with_progress_notifications(
    root: Path, host_env: dict[str, str], upwell_server: str
) -> None:
    src = make_file(root / "talk.bin", 12 * 1024 * 1024 + 7, seed=3)
    env = {**host_env, "UPLOAD_BANDWIDTH_LIMIT": "6MiB/s"}  # long enough to see the pacing
    events: list[tuple[float, float, float | None, str | None]] = []
    started = time.monotonic()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((time.monotonic() - started, progress, total, message))

    async with client(root, env) as session:
        result = await session.call_tool(
            "upload_file", {"path": "talk.bin", "to": upwell_server}, progress_callback=on_progress
        )
        assert not result.is_error, text_of(result)
        out = result.structured_content
        assert out is not None and set(out) == UPLOAD_RESULT_KEYS
        listed = await session.call_tool("list_sessions", {})
        status = await session.call_tool("upload_status", {"session_id": out["session_id"]})
        again = await session.call_tool("upload_file", {"path": "talk.bin", "to": upwell_server})
    # A finished upload is not sent again, and was not interrupted: resumed is false.
    assert again.structured_content is not None
    assert again.structured_content["file_uri"] == out["file_uri"]
    assert again.structured_content["resumed"] is False
    size = src.stat().st_size
    assert out["size"] == size and out["resumed"] is False and out["seconds"] > 0
    assert out["sha256"] == sha256(src)
    assert await fetch_sha256(out["file_uri"]) == (size, sha256(src))
    check_progress(events, size)
    assert len(events) >= 3
    assert listed.structured_content is not None
    sessions = listed.structured_content["sessions"]
    assert [s["session_id"] for s in sessions] == [out["session_id"]]
    assert sessions[0]["status"] == "complete" and sessions[0]["file_uri"] == out["file_uri"]
    assert status.structured_content == sessions[0]


async def test_a_cancelled_upload_is_paused_and_the_same_call_resumes_it(
    root: Path, host_env: dict[str, str], upwell_server: str
) -> None:
    src = make_file(root / "big.bin", 10 * 1024 * 1024 + 3, seed=4)
    size = src.stat().st_size
    env = {**host_env, "UPLOAD_BANDWIDTH_LIMIT": "4MiB/s"}
    half = anyio.Event()
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        if progress >= size / 3:
            half.set()

    args = {"path": str(src), "to": upwell_server}
    async with client(root, env) as session:
        async with anyio.create_task_group() as tg:

            async def upload() -> None:
                await session.call_tool("upload_file", args, progress_callback=on_progress)
                raise AssertionError("the upload finished before it was cancelled")

            tg.start_soon(upload)
            with anyio.fail_after(30):
                await half.wait()
            tg.cancel_scope.cancel()
        cancelled_at = max(seen)
        assert cancelled_at < size

        status: dict[str, Any] = {}
        with anyio.fail_after(10):
            while status.get("status") != "paused":
                listed = await session.call_tool("list_sessions", {})
                assert listed.structured_content is not None
                (status,) = listed.structured_content["sessions"]
                await anyio.sleep(0.05)
        assert status["file_path"] == str(src.resolve())

        resumed = await session.call_tool("upload_file", args)
    assert not resumed.is_error, text_of(resumed)
    out = resumed.structured_content
    assert out is not None and out["resumed"] is True
    assert out["session_id"] == status["session_id"]
    assert await fetch_sha256(out["file_uri"]) == (size, sha256(src))


async def test_paths_outside_the_roots_are_refused_before_anything_starts(
    root: Path, host_env: dict[str, str], upwell_server: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for agents")
    (root / "escape").symlink_to(secret)
    async with client(root, host_env) as session:
        outside = await session.call_tool("upload_file", {"path": str(secret), "to": upwell_server})
        link = await session.call_tool("upload_file", {"path": "escape", "to": upwell_server})
        dotdot = await session.call_tool(
            "upload_file", {"path": "../secret.txt", "to": upwell_server}
        )
        listed = await session.call_tool("list_sessions", {})
        no_to = await session.call_tool("upload_file", {"path": "escape"})
    assert (
        no_to.is_error and text_of(no_to) == "invalid arguments for upload_file: to: Field required"
    )
    for result, named in ((outside, str(secret)), (link, "escape"), (dotdot, "../secret.txt")):
        assert result.is_error
        message = text_of(result)
        assert named in message and str(root) in message and "outside" in message
        assert "\n" not in message.strip()
    assert "leads outside" in text_of(link)
    assert listed.structured_content == {"sessions": []}


async def test_gemini_upload_and_failures_never_show_the_key(
    root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = make_file(root / "clip.mp4", 3 * 1024 * 1024 + 5, seed=5)
    app = create_gemini_app(tmp_path / "emu", api_key=KEY, processing_polls=0)
    async with running_emulator(app) as base:
        env = {**host_env, "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": base}
        seen: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(message or "")

        async with client(root, env) as session:
            ok = await session.call_tool(
                "upload_file",
                {"path": "clip.mp4", "to": "gemini", "display_name": "Clip"},
                progress_callback=on_progress,
            )
            bad_to = await session.call_tool("upload_file", {"path": "clip.mp4", "to": "ftp://x"})
            listed = await session.call_tool("list_sessions", {})
            assert ok.structured_content is not None
            status = await session.call_tool(
                "upload_status", {"session_id": ok.structured_content["session_id"]}
            )
            missing = await session.call_tool("upload_status", {"session_id": "upload_nope"})
            name = ok.structured_content["file_name"]
            stored = tmp_path / "emu" / "files" / f"{name.removeprefix('files/')}.bin"
            stored_sha = sha256(stored)
            files = await session.call_tool("list_files", {"to": "gemini"})
            got = await session.call_tool("get_file", {"to": "gemini", "name": name})
            content = await session.call_tool("get_file_content", {"to": "gemini", "name": name})
            deleted = await session.call_tool("delete_file", {"to": "gemini", "name": name})
            gone = await session.call_tool("get_file", {"to": "gemini", "name": name})
            not_files = await session.call_tool("list_files", {"to": "http://127.0.0.1:9/files/"})
        async with client(root, {**host_env, "GEMINI_BASE_URL": base}) as session:
            no_key = await session.call_tool("upload_file", {"path": "clip.mp4", "to": "gemini"})
    assert not ok.is_error, text_of(ok)
    out = ok.structured_content
    assert out["file_name"].startswith("files/") and out["file_uri"].startswith(base)
    assert out["sha256"] == sha256(src) and out["size"] == src.stat().st_size
    assert stored_sha == sha256(src)
    assert bad_to.is_error and "ftp://x" in text_of(bad_to)
    assert missing.is_error and "upload_nope" in text_of(missing)
    assert no_key.is_error and "GEMINI_API_KEY" in text_of(no_key)
    assert files.structured_content is not None and got.structured_content is not None
    assert [f["name"] for f in files.structured_content["files"]] == [name]
    assert got.structured_content["name"] == name
    assert got.structured_content["size"] == src.stat().st_size
    assert got.structured_content["uri"] == out["file_uri"]
    assert content.is_error and "content" in text_of(content)
    assert deleted.structured_content == {"deleted": name} and not stored.exists()
    assert gone.is_error and not_files.is_error and "keeps no files" in text_of(not_files)
    results = (ok, bad_to, listed, status, missing, no_key, files, got, content, deleted, gone)
    everything = json.dumps([r.model_dump(mode="json") for r in results]) + json.dumps(seen)
    assert KEY not in everything


def test_stdout_carries_mcp_messages_only_and_eof_ends_the_server(
    root: Path, host_env: dict[str, str]
) -> None:
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    # EOF comes only once the last answer is in: a server may drop requests still in flight
    # when its input ends, and this test is about what stdout carries, not about that race.
    proc = subprocess.Popen(
        [*UPWELL_MCP, "--root", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=host_env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    proc.stdin.flush()
    replies = []
    while not any(r.get("id") == 2 for r in replies):
        line = proc.stdout.readline()
        assert line, "upwell mcp ended before it answered tools/list"
        replies.append(json.loads(line))  # every line is a JSON-RPC message
    proc.stdin.close()
    assert proc.stderr is not None
    rest = proc.stdout.read()  # until the server exits and closes it
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    proc.stdout.close()
    proc.stderr.close()
    replies += [json.loads(line) for line in rest.splitlines()]
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert set(by_id) == {1, 2}
    assert by_id[1]["result"]["serverInfo"]["name"] == "upwell"
    assert {t["name"] for t in by_id[2]["result"]["tools"]} == TOOLS


async def test_upload_to_s3_through_the_same_tool(
    root: Path, host_env: dict[str, str], s3_server: S3Server
) -> None:
    src = make_file(root / "backup.tar", 12 * 1024 * 1024 + 1, seed=6)
    bucket = f"upwell-mcp-{secrets.token_hex(4)}"
    s3_server.client().create_bucket(Bucket=bucket)
    env = {**host_env, **s3_server.env()}
    async with client(root, env) as session:
        result = await session.call_tool(
            "upload_file", {"path": "backup.tar", "to": f"s3://{bucket}/nightly/"}
        )
    assert not result.is_error, text_of(result)
    out = result.structured_content
    assert out is not None and out["size"] == src.stat().st_size
    body = s3_server.client().get_object(Bucket=bucket, Key="nightly/backup.tar")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256(src) == out["sha256"]
    assert s3_server.secret_key not in json.dumps(out)


def test_a_missing_root_is_a_usage_error_with_nothing_on_stdout(
    tmp_path: Path, host_env: dict[str, str]
) -> None:
    proc = subprocess.run(
        [*UPWELL_MCP, "--root", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
        env=host_env,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr
