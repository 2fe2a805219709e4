"""Helpers for the MCP tests: the servers' argv, the TS SDK's driver, the progress bounds."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "interop" / "node"
MCP_CLIENT_JS = NODE_DIR / "mcp_client.mjs"
UPWELL_MCP = [sys.executable, "-m", "upwell", "mcp"]
DRIVER_TIMEOUT = 300.0  # seconds one TS driver run may take (a 200 MB upload on a busy machine)

TOOLS = {
    "upload_file",
    "list_sessions",
    "upload_status",
    "list_files",
    "get_file",
    "delete_file",
    "get_file_content",
}
UPLOAD_RESULT_KEYS = {"file_name", "file_uri", "sha256", "size", "seconds", "resumed", "session_id"}


def check_progress(
    events: Sequence[tuple[float, float, float | None, str | None]], size: int
) -> None:
    """The issue's bounds on (seconds, progress, total, message) notifications of one upload:
    total == size every time, a message, never decreasing, the last == total, at least one a
    second (with slack for a loaded machine) and at most five in any second."""
    assert events, "no progress notifications"
    assert all(total == size for _, _, total, _ in events), events[:3]
    assert all(message for _, _, _, message in events)
    values = [p for _, p, _, _ in events]
    assert values == sorted(values), "progress went back"
    assert values[-1] == size
    times = [t for t, _, _, _ in events]
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u - t < 1.0)
        assert in_window <= 5, f"{in_window} notifications within a second from {t:.2f}s"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps, default=0.0) < 1.75, f"a gap of {max(gaps):.2f}s between notifications"


async def run_ts_client(script: dict[str, Any]) -> list[Any]:
    """Run the TS SDK's driver on `script` (bounded by DRIVER_TIMEOUT); its steps' results."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(MCP_CLIENT_JS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(DRIVER_TIMEOUT):
            out, err = await proc.communicate(json.dumps(script).encode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return list(json.loads(out)["steps"])


def ts_progress(step: dict[str, Any]) -> list[tuple[float, float, float | None, str | None]]:
    return [
        (e["t"] / 1000, e["progress"], e.get("total"), e.get("message")) for e in step["progress"]
    ]


def stdio_server(root: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """The TS driver's `server` for `upwell mcp --root ROOT` over stdio."""
    return {
        "command": UPWELL_MCP[0],
        "args": [*UPWELL_MCP[1:], "--root", str(root), *extra],
        "env": env,
    }
