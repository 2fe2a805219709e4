"""The MCP TypeScript SDK's client uploading through `upwell mcp` to the OpenAI-compatible
emulator (OpenAI, Kimi presets): 200 MB with progress, cancel half way and resume by the
Uploads API's parts, Kimi's extracted text, and no key in anything the client sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.files import make_file
from upwell.emulators.openai import create_openai_app
from upwell.emulators.runner import running_emulator

from .support import check_progress, run_ts_client, stdio_server, ts_progress
from .test_typescript_client import MB, file_sha, ok, paused_step, refusal, upload_step

pytestmark = pytest.mark.interop

KEY = "sk-mcp-ts-secret-5150515051"


async def test_stdio_uploads_200_mb_to_the_openai_emulator_with_progress(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "corpus.jsonl", 200 * MB + 3, 21)
    app = create_openai_app(tmp_path / "emu", api_key=KEY)
    async with running_emulator(app) as base:
        env = {**host_env, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base + "/v1"}
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    upload_step("corpus.jsonl", "openai", progress=True),
                    {"op": "call", "name": "list_files", "arguments": {"to": "openai"}},
                ],
            }
        )
    out = ok(steps[0])
    digest = await asyncio.to_thread(file_sha, src)
    assert (out["size"], out["sha256"]) == (src.stat().st_size, digest)
    stored = tmp_path / "emu" / "files" / f"{out['file_name']}.bin"
    assert await asyncio.to_thread(file_sha, stored) == digest
    check_progress(ts_progress(steps[0]), src.stat().st_size)
    names = [f["name"] for f in steps[1]["result"]["structuredContent"]["files"]]
    assert names == [out["file_name"]]
    assert KEY not in json.dumps(steps)


async def test_stdio_cancel_and_resume_by_parts_at_the_openai_emulator(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    src = await asyncio.to_thread(make_file, root / "parts.bin", 24 * MB + 1, 22)
    app = create_openai_app(tmp_path / "emu", api_key=KEY)
    async with running_emulator(app) as base:
        env = {
            **host_env,
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": base + "/v1",
            "UPWELL_FILES_MAX_SIZE": "1MiB",  # above this: the Uploads API, in parts
            "UPLOAD_BANDWIDTH_LIMIT": "8MiB/s",
        }
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    upload_step("parts.bin", "openai", progress=True, cancel_at=0.5),
                    paused_step(),
                    upload_step("parts.bin", "openai", progress=True),
                ],
            }
        )
    cancelled, paused, resumed = steps
    assert cancelled["cancelled"] is True and paused["value"] == "paused"
    out = ok(resumed)
    assert out["resumed"] is True
    stored = tmp_path / "emu" / "files" / f"{out['file_name']}.bin"
    assert await asyncio.to_thread(file_sha, stored) == await asyncio.to_thread(file_sha, src)
    check_progress(ts_progress(resumed), src.stat().st_size)
    assert KEY not in json.dumps(steps)


async def test_kimi_purpose_and_extracted_text_through_the_tools(
    ts_sdk: Path, root: Path, host_env: dict[str, str], tmp_path: Path
) -> None:
    notes = root / "notes.txt"
    notes.write_text("upwell moves large files.\nThis is the text Kimi extracts.\n")
    app = create_openai_app(tmp_path / "emu", api_key=KEY)
    async with running_emulator(app) as base:
        env = {**host_env, "MOONSHOT_API_KEY": KEY, "MOONSHOT_BASE_URL": base + "/v1"}
        first = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    {
                        "op": "call",
                        "name": "upload_file",
                        "arguments": {"path": "notes.txt", "to": "kimi", "purpose": "file-extract"},
                    },
                    {
                        "op": "call",
                        "name": "upload_file",
                        "arguments": {"path": "notes.txt", "to": str(root), "purpose": "x"},
                    },
                ],
            }
        )
        name = ok(first[0])["file_name"]
        steps = await run_ts_client(
            {
                "server": stdio_server(root, env),
                "steps": [
                    {"op": "call", "name": "get_file", "arguments": {"to": "kimi", "name": name}},
                    {
                        "op": "call",
                        "name": "get_file_content",
                        "arguments": {"to": "kimi", "name": name},
                    },
                    {
                        "op": "call",
                        "name": "delete_file",
                        "arguments": {"to": "kimi", "name": name},
                    },
                    {"op": "call", "name": "list_files", "arguments": {"to": "kimi"}},
                ],
            }
        )
    got, content, deleted, listed = (s["result"]["structuredContent"] for s in steps)
    assert got["name"] == name and got["size"] == notes.stat().st_size
    assert content == {"name": name, "content": notes.read_text()}
    assert deleted == {"deleted": name} and listed == {"files": []}
    assert "purpose" in refusal(first[1])
    assert KEY not in json.dumps([first, steps])
