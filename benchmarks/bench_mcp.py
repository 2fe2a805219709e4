"""What the MCP path costs: `upwell upload` beside `upwell mcp`'s upload_file, into upwell serve.

Run from the repository root, after `.ci/run` (or `pip install -e '.[test]'` and
`npm ci --prefix tests/interop/node`):

    .venv/bin/python benchmarks/bench_mcp.py            # 1 GiB, 3 timed rounds
    .venv/bin/python benchmarks/bench_mcp.py --quick    # 16 MiB, 1 round, no BENCHMARKS.md

Cases, each into a fresh `upwell serve` (empty data dir) on loopback:
  (a) `upwell upload FILE --to URL` (the CLI, its defaults)
  (b) the MCP TypeScript SDK's client -> `upwell mcp` over stdio -> upload_file, progress on
  (c) the MCP Python SDK's client -> `upwell mcp` over stdio -> upload_file, progress on
Rounds: one untimed warm-up round, then every case once per round, the order reversed every
other round, so the machine's slow moments fall on all cases alike; medians are reported, with
each MCP case's time as a ratio to (a)'s from the same run. Time is the client process's wall
clock, start-up included (for (b) and (c) that is the client and the `upwell mcp` it starts).
After each run the stored bytes' SHA-256 is checked (untimed). Writes its section of
BENCHMARKS.md (not with --quick, unless --out is given).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "interop"))
sys.path.insert(0, str(ROOT))

import peers  # noqa: E402

from benchmarks.bench_tus import checked, measure  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
OUT = ROOT / "BENCHMARKS.md"
UPWELL_MCP = [sys.executable, "-m", "upwell", "mcp"]
MCP_CLIENT_JS = peers.NODE_DIR / "mcp_client.mjs"

# The Python SDK's client: upload_file with a progress callback; prints the result as JSON.
PY_CLIENT = """
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters, stdio_client

async def main(root, path, to):
    args = ["-m", "upwell", "mcp", "--root", root]
    params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
    async def progress(p, total, message):
        pass
    async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        res = await s.call_tool("upload_file", {"path": path, "to": to}, progress_callback=progress)
        if res.is_error:
            sys.exit(res.content[0].text)
        print(json.dumps(res.structured_content))

asyncio.run(main(*sys.argv[1:]))
"""


def make_random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


def sha256_url(url: str) -> str:
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as r:
        while block := r.read(MIB):
            h.update(block)
    return h.hexdigest()


def file_uri_of(stdout: str) -> str:
    """The uploaded file's URI from a case's stdout (NDJSON's last line, or the MCP result)."""
    last = json.loads(stdout.strip().splitlines()[-1])
    if "steps" in last:  # the TS driver
        (step,) = last["steps"]
        if step["error"] or step["result"].get("isError"):
            raise RuntimeError(f"upload_file failed: {step}")
        last = step["result"]["structuredContent"]
    return str(last["file_uri"])


LABELS = {
    "a": "upwell upload (CLI)",
    "b": "TS SDK client -> upwell mcp upload_file",
    "c": "Python SDK client -> upwell mcp upload_file",
}


def run_case(
    key: str, src: Path, tus_url: str, env: dict[str, str], work: Path
) -> tuple[float, str]:
    """One timed run of case `key`: (seconds, the uploaded file's URI)."""
    if key == "a":
        argv = [*UPWELL_MCP[:3], "upload", str(src), "--to", tus_url, "--json"]
        m = checked(measure(argv, env, work))
    elif key == "b":
        script = {
            "server": {
                "command": UPWELL_MCP[0],
                "args": [*UPWELL_MCP[1:], "--root", str(src.parent)],
                "env": env,
            },
            "steps": [
                {
                    "op": "call",
                    "name": "upload_file",
                    "arguments": {"path": src.name, "to": tus_url},
                    "progress": True,
                }
            ],
        }
        # measure() gives its process no stdin, so the driver reads its script from a file.
        script_path = work / "script.json"
        script_path.write_text(json.dumps(script))
        argv = ["sh", "-c", 'exec node "$0" < "$1"', str(MCP_CLIENT_JS), str(script_path)]
        m = checked(measure(argv, env, work))
    else:
        argv = [sys.executable, "-c", PY_CLIENT, str(src.parent), src.name, tus_url]
        m = checked(measure(argv, env, work))
    return m.seconds, file_uri_of(m.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=None, help="default 1024 (--quick: 16)")
    ap.add_argument("--runs", type=int, default=None, help="timed rounds (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    size_mib = args.size_mib or (16 if args.quick else 1024)
    runs = args.runs or (1 if args.quick else 3)
    out = args.out or (None if args.quick else OUT)
    size = size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="bench-mcp-", dir=args.work_dir))
    src_dir = work / "root"
    src_dir.mkdir()
    src = src_dir / "source.bin"
    make_random_file(src, size)
    digest = sha256_file(src)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("UPLOAD_", "UPWELL_", "GEMINI_"))
    }
    labels = LABELS
    times: dict[str, list[float]] = {k: [] for k in labels}
    ratios: dict[str, list[float]] = {k: [] for k in labels}
    try:
        for rnd in range(runs + 1):
            order = list(labels) if rnd % 2 == 0 else list(reversed(labels))
            this_round: dict[str, float] = {}
            for key in order:
                data = work / f"serve-{rnd}-{key}"
                sessions = work / f"sessions-{rnd}-{key}"
                with peers.upwell_serve(data, work / "serve.log") as server:
                    env = {**base, "UPLOAD_SESSION_DIR": str(sessions)}
                    this_round[key], uri = run_case(key, src, server.url, env, work)
                    if sha256_url(uri) != digest:
                        raise RuntimeError(f"{labels[key]}: the stored bytes differ")
                shutil.rmtree(data, ignore_errors=True)
                shutil.rmtree(sessions, ignore_errors=True)
            if rnd == 0:
                continue  # the warm-up round
            for key, seconds in this_round.items():
                times[key].append(seconds)
                ratios[key].append(seconds / this_round["a"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "## MCP: upload_file beside the CLI",
        "",
        f"`.venv/bin/python benchmarks/bench_mcp.py --size-mib {size_mib} --runs {runs}` — "
        f"a {size_mib} MiB file into `upwell serve` on loopback, {runs} timed rounds "
        f"(medians), {platform.machine()} {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}.",
        "",
        "| case | seconds | MB/s | time ÷ (a) |",
        "|---|---:|---:|---:|",
    ]
    for key, label in labels.items():
        med = statistics.median(times[key])
        ratio = statistics.median(ratios[key])
        lines.append(f"| ({key}) {label} | {med:.2f} | {size / 1e6 / med:.0f} | {ratio:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        write_section(out, "mcp", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
