"""The official MCP TypeScript SDK's client (a client no one here wrote) against `upwell mcp`
over stdio and against `upwell serve`'s `/mcp` over streamable HTTP: 200 MB uploads to the tus
server and the Gemini emulator with progress, cancel half way and resume byte-identical,
refusals, roots."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.files import fetch_sha256, make_file
from tests.support.processes import serve_process, serve_process_async
from upwell.emulators.gemini import create_gemini_app
from upwell.emulators.runner import running_emulator
from upwell.server.runner import running_server
from upwell.server.settings import ServerSettings

from .support import (
    TOOLS,
    UPLOAD_RESULT_KEYS,
    check_progress,
    run_ts_client,
    stdio_server,
    ts_progress,
)

pytestmark = pytest.mark.interop

MB = 1000 * 1000
KEY = "ts-mcp-secret-key-91c2"


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def upload_step(path: str, to: str, **more: Any) -> dict[str, Any]:
    return {"op": "call", "name": "upload_file", "arguments": {"path": path, "to": to}, **more}


def paused_step(timeout_ms: int = 15_000) -> dict[str, Any]:
    return {
        "op": "poll",
        "name": "list_sessions",
        "path": "sessions.0.status",
        "equals": "paused",
        "timeout_ms": timeout_ms,
    }


def ok(step: dict[str, Any]) -> dict[str, Any]:
    assert step["error"] is None and step["result"] is not None, step["error"]
    result = step["result"]
    assert not result.get("isError"), result["content"]
    out: dict[str, Any] = result["structuredContent"]
    assert set(out) == UPLOAD_RESULT_KEYS
    return out


def refusal(step: dict[str, Any]) -> str:
    result = step["result"]
    assert result is not None and result.get("isError") is True, step
    return " ".join(c.get("text", "") for c in result["content"])


async def test_stdio_lists_tools_and_uploads_200_mb_to_tus_with_progress(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "big.bin", 200 * MB + 11, 7)
    async with serve_process_async(tmp_path / "tus-data") as (tus_url, _pid):
        steps = await run_ts_client(
            {
                "server": stdio_server(root, host_env),
                "steps": [{"op": "list_tools"}, upload_step("big.bin", tus_url, progress=True)],
            }
        )
        tools = {t["name"]: t for t in steps[0]["tools"]}
        assert set(tools) >= TOOLS
        assert all(t["outputSchema"]["type"] == "object" for t in tools.values())
        out = ok(steps[1])
        size, digest = src.stat().st_size, await asyncio.to_thread(file_sha, src)
        assert (out["size"], out["sha256"], out["resumed"]) == (size, digest, False)
        assert await fetch_sha256(out["file_uri"]) == (size, digest)
    check_progress(ts_progress(steps[1]), size)


async def test_stdio_uploads_200_mb_to_the_gemini_emulator_without_showing_the_key(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "lecture.mp4", 200 * MB + 5, 8)
    app = create_gemini_app(tmp_path / "emu", api_key=KEY, processing_polls=0)
    async with running_emulator(app) as base:
        env = {**host_env, "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": base}
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    upload_step("lecture.mp4", "gemini", progress=True),
                    {"op": "call", "name": "list_files", "arguments": {"to": "gemini"}},
                    {"op": "call", "name": "list_sessions"},
                ],
            }
        )
    out = ok(steps[0])
    size, digest = src.stat().st_size, await asyncio.to_thread(file_sha, src)
    assert (out["size"], out["sha256"]) == (size, digest)
    stored = tmp_path / "emu" / "files" / f"{out['file_name'].removeprefix('files/')}.bin"
    assert await asyncio.to_thread(file_sha, stored) == digest
    check_progress(ts_progress(steps[0]), size)
    names = [f["name"] for f in steps[1]["result"]["structuredContent"]["files"]]
    assert names == [out["file_name"]]
    assert KEY not in json.dumps(steps)


async def test_stdio_cancel_half_way_leaves_it_paused_and_the_same_call_resumes(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "half.bin", 12 * MB + 1, 9)
    env = {**host_env, "UPLOAD_BANDWIDTH_LIMIT": "6MiB/s"}
    async with serve_process_async(tmp_path / "tus-data") as (tus_url, _pid):
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    upload_step("half.bin", tus_url, progress=True, cancel_at=0.5),
                    paused_step(),
                    upload_step("half.bin", tus_url, progress=True),
                ],
            }
        )
        cancelled, paused, resumed = steps
        assert cancelled["cancelled"] is True and cancelled["result"] is None
        assert max(p["progress"] for p in cancelled["progress"]) < src.stat().st_size
        assert paused.get("timed_out") is None and paused["value"] == "paused"
        out = ok(resumed)
        assert out["resumed"] is True
        assert (
            out["session_id"] == paused["result"]["structuredContent"]["sessions"][0]["session_id"]
        )
        digest = await asyncio.to_thread(file_sha, src)
        assert await fetch_sha256(out["file_uri"]) == (src.stat().st_size, digest)
    check_progress(ts_progress(resumed), src.stat().st_size)


async def test_stdio_honours_client_roots_and_refuses_paths_outside_them(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    extra = tmp_path / "client-root"
    extra.mkdir()
    make_file(extra / "offered.bin", 100_000, seed=10)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for agents")
    (root / "escape").symlink_to(secret)
    async with serve_process_async(tmp_path / "tus-data") as (tus_url, _pid):
        steps = await run_ts_client(
            {
                "server": stdio_server(root, host_env),
                "roots": [extra.as_uri()],
                "steps": [
                    upload_step(str(extra / "offered.bin"), tus_url),
                    upload_step(str(secret), tus_url),
                    upload_step("escape", tus_url),
                ],
            }
        )
        (refused,) = await run_ts_client(
            {
                "server": stdio_server(root, host_env, "--no-client-roots"),
                "roots": [extra.as_uri()],
                "steps": [upload_step(str(extra / "offered.bin"), tus_url)],
            }
        )
    assert ok(steps[0])["size"] == 100_000
    assert f"outside the allowed roots ({root})" in refusal(refused)  # the client's not among them
    outside = refusal(steps[1])
    assert str(secret) in outside and str(root) in outside and str(extra) in outside
    assert "leads outside" in refusal(steps[2])


async def test_http_mcp_on_upwell_serve_uploads_cancels_and_resumes(
    ts_sdk: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process server's tools read the process environment, as `upwell serve` does.
    monkeypatch.setenv("UPLOAD_BANDWIDTH_LIMIT", "6MiB/s")
    monkeypatch.setenv("UPLOAD_SESSION_DIR", str(tmp_path / "sessions"))
    src = make_file(root / "over-http.bin", 12 * MB + 3, seed=11)
    elsewhere = tmp_path / "client-side"
    elsewhere.mkdir()
    make_file(elsewhere / "x.bin", 10, seed=12)
    settings = ServerSettings(port=0, data_dir=tmp_path / "serve-data", mcp_roots=(root,))
    async with running_server(settings) as tus_url:
        mcp_url = tus_url.removesuffix("/files/") + "/mcp"
        steps = await run_ts_client(
            {
                "server": {"url": mcp_url},
                "roots": [elsewhere.as_uri()],  # over HTTP the client's roots are not ours
                "steps": [
                    {"op": "list_tools"},
                    upload_step(str(elsewhere / "x.bin"), tus_url),
                    upload_step("over-http.bin", tus_url, progress=True, cancel_at=0.4),
                    paused_step(),
                    upload_step("over-http.bin", tus_url, progress=True),
                ],
            }
        )
        tools, refused, cancelled, paused, resumed = steps
        assert {t["name"] for t in tools["tools"]} >= TOOLS
        assert str(root) in refusal(refused) and "outside" in refusal(refused)
        assert cancelled["cancelled"] is True
        assert paused["value"] == "paused"
        out = ok(resumed)
        assert out["resumed"] is True
        digest = await asyncio.to_thread(file_sha, src)
        assert await fetch_sha256(out["file_uri"]) == (src.stat().st_size, digest)
    check_progress(ts_progress(resumed), src.stat().st_size)


async def test_stdio_cancel_and_resume_at_the_gemini_emulator(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "talk.mp4", 12 * MB + 9, 13)
    app = create_gemini_app(tmp_path / "emu", api_key=KEY, processing_polls=0)
    async with running_emulator(app) as base:
        env = {
            **host_env,
            "GEMINI_API_KEY": KEY,
            "GEMINI_BASE_URL": base,
            "UPLOAD_BANDWIDTH_LIMIT": "6MiB/s",
        }
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    upload_step("talk.mp4", "gemini", progress=True, cancel_at=0.5),
                    paused_step(),
                    upload_step("talk.mp4", "gemini", progress=True),
                ],
            }
        )
    cancelled, paused, resumed = steps
    assert cancelled["cancelled"] is True and paused["value"] == "paused"
    out = ok(resumed)
    assert out["resumed"] is True
    stored = tmp_path / "emu" / "files" / f"{out['file_name'].removeprefix('files/')}.bin"
    assert await asyncio.to_thread(file_sha, stored) == await asyncio.to_thread(file_sha, src)
    check_progress(ts_progress(resumed), src.stat().st_size)
    assert KEY not in json.dumps(steps)


async def test_upwell_serve_mcp_root_serves_the_tools_at_slash_mcp(
    ts_sdk: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_SESSION_DIR", str(tmp_path / "sessions"))  # the process's env
    src = make_file(root / "served.bin", 300_000, seed=14)
    with serve_process(tmp_path / "data", "--mcp-root", str(root)) as (tus_url, _proc):
        mcp_url = tus_url.removesuffix("/files/") + "/mcp"
        steps = await run_ts_client(
            {
                "server": {"url": mcp_url},
                "steps": [{"op": "list_tools"}, upload_step("served.bin", tus_url)],
            }
        )
        out = ok(steps[1])
        assert await fetch_sha256(out["file_uri"]) == (300_000, file_sha(src))
    assert {t["name"] for t in steps[0]["tools"]} == TOOLS


async def test_http_mcp_is_behind_the_servers_bearer_tokens(
    ts_sdk: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_SESSION_DIR", str(tmp_path / "sessions"))
    token = "mcp-test-token-0123456789"
    settings = ServerSettings(
        port=0, data_dir=tmp_path / "serve-data", mcp_roots=(root,), tokens={token: "alice"}
    )
    async with running_server(settings) as tus_url:
        mcp_url = tus_url.removesuffix("/files/") + "/mcp"
        async with aiohttp.ClientSession() as http, http.post(mcp_url, json={}) as anonymous:
            assert anonymous.status == 401
        steps = await run_ts_client(
            {
                "server": {"url": mcp_url, "headers": {"Authorization": f"Bearer {token}"}},
                "steps": [{"op": "list_tools"}, {"op": "call", "name": "list_sessions"}],
            }
        )
    assert {t["name"] for t in steps[0]["tools"]} == TOOLS
    assert steps[1]["result"]["structuredContent"] == {"sessions": []}
    assert token not in json.dumps(steps)


async def test_http_mcp_sessions_belong_to_the_token_that_made_them(
    ts_sdk: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over /mcp with tokens, one owner's upload sessions are not another's to list or read."""
    monkeypatch.setenv("UPLOAD_SESSION_DIR", str(tmp_path / "sessions"))
    alice, bob = "mcp-alice-token-0123456789", "mcp-bob-token-98765432100"
    src = make_file(root / "alice.bin", 3 * MB, seed=11)
    settings = ServerSettings(
        port=0,
        data_dir=tmp_path / "serve-data",
        mcp_roots=(root,),
        tokens={alice: "alice", bob: "bob"},
    )
    target = ServerSettings(port=0, data_dir=tmp_path / "tus-data")
    async with running_server(target) as tus_url, running_server(settings) as served:
        mcp_url = served.removesuffix("/files/") + "/mcp"

        def as_owner(token: str, *steps: dict[str, Any]) -> dict[str, Any]:
            return {
                "server": {"url": mcp_url, "headers": {"Authorization": f"Bearer {token}"}},
                "steps": list(steps),
            }

        (uploaded, listed) = await run_ts_client(
            as_owner(alice, upload_step(str(src), tus_url), {"op": "call", "name": "list_sessions"})
        )
        session_id = ok(uploaded)["session_id"]
        (bobs, status) = await run_ts_client(
            as_owner(
                bob,
                {"op": "call", "name": "list_sessions"},
                {"op": "call", "name": "upload_status", "arguments": {"session_id": session_id}},
            )
        )
    assert [s["session_id"] for s in listed["result"]["structuredContent"]["sessions"]] == [
        session_id
    ]
    assert bobs["result"]["structuredContent"] == {"sessions": []}
    assert "no session" in refusal(status)
