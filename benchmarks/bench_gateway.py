"""The gateway's costs on loopback; writes its section of BENCHMARKS.md.

Run from the repository root after `pip install -e '.[test]'`:

    .venv/bin/python benchmarks/bench_gateway.py            # full: 1 GiB, 100 x 16 MiB, 5 rounds
    .venv/bin/python benchmarks/bench_gateway.py --quick    # smoke run: tiny sizes, 1 round

Part 1, one big file into one `upwell serve` (fresh server and data dir per run):
  (post) curl -F file=@big POST /upload (NDJSON answer)
  (tus)  curl -T, one streamed tus PATCH (POST to create first)
  reported: client wall time -> MB/s, and the server's peak RSS (its VmHWM before it stops).
Part 2, 100 concurrent tus uploads (POST, then PATCHes of 1 MiB) from one aiohttp client
process, into:
  (gw)   this tree's server: catalog, events and metrics on
  (base) the server of a baseline git ref (default `main`), exported with `git archive`
  reported: aggregate MB/s (all bytes / wall time) and the p99 PATCH latency.
Cases are interleaved in rounds (one untimed warm-up round first); medians of the rounds, and
the ratios computed from the same run. MB/s is 10**6 bytes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
PATCH_SIZE = 1 * MIB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str  # http://127.0.0.1:port
    proc: subprocess.Popen[bytes]

    def stop(self) -> int | None:
        """Stop the server; its peak RSS in bytes (the kernel's VmHWM, read just before)."""
        peak = None
        with contextlib.suppress(OSError, ValueError, StopIteration):
            status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
            line = next(x for x in status if x.startswith("VmHWM:"))
            peak = int(line.split()[1]) * 1024
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return peak


@contextlib.contextmanager
def server(data_dir: Path, pythonpath: Path | None = None) -> Iterator[Server]:
    """`upwell serve` in its own process."""
    port = free_port()
    argv = [sys.executable, "-m", "upwell", "serve", "--port", str(port),
            "--data-dir", str(data_dir)]  # fmt: skip
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)
    srv = Server(url, proc)
    try:
        yield srv
    finally:
        if srv.proc.poll() is None:
            srv.stop()


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {out.stderr.decode()[:300]}")
    if b'"stage":"failed"' in out.stdout:
        raise RuntimeError("POST /upload failed: " + out.stdout.decode()[-300:])
    return seconds


def post_upload(url: str, path: Path) -> float:
    return timed(["curl", "-sS", "-N", "-o", "/dev/null", "-F", f"file=@{path}", url + "/upload"])


def tus_put(url: str, path: Path) -> float:
    start = time.perf_counter()
    created = subprocess.run(
        ["curl", "-sS", "-i", "-X", "POST", "-H", "Tus-Resumable: 1.0.0",
         "-H", f"Upload-Length: {path.stat().st_size}", url + "/files/"],
        capture_output=True, check=True,
    )  # fmt: skip
    location = next(
        line.split(b":", 1)[1].strip().decode()
        for line in created.stdout.splitlines()
        if line.lower().startswith(b"location:")
    )
    timed(["curl", "-sS", "-o", "/dev/null", "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0",
           "-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream",
           "-T", str(path), location])  # fmt: skip
    return time.perf_counter() - start


@dataclass
class Part1:
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"post": [], "tus": []})
    rss: dict[str, list[int]] = field(default_factory=lambda: {"post": [], "tus": []})


def run_part1(work: Path, source: Path, rounds: int) -> Part1:
    result = Part1()
    for n in range(rounds + 1):  # round 0 is the untimed warm-up
        for case, send in (("post", post_upload), ("tus", tus_put)):
            data_dir = work / f"p1-{case}-{n}"
            with server(data_dir) as srv:
                seconds = send(srv.url, source)
                rss = srv.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
            if n:
                result.seconds[case].append(seconds)
                if rss is not None:
                    result.rss[case].append(rss)
    return result


async def many_tus(url: str, uploads: int, size: int) -> tuple[float, list[float]]:
    """`uploads` tus uploads at once; wall seconds and every PATCH's latency."""
    payload = os.urandom(PATCH_SIZE)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=uploads)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
            async with http.post(url + "/files/", headers=headers) as resp:
                location = resp.headers["Location"]
            offset = 0
            while offset < size:
                n = min(PATCH_SIZE, size - offset)
                start = time.perf_counter()
                async with http.patch(
                    location,
                    data=payload[:n],
                    headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                             "Content-Type": "application/offset+octet-stream"},
                ) as resp:  # fmt: skip
                    if resp.status != 204:
                        raise RuntimeError(f"PATCH answered {resp.status}")
                latencies.append(time.perf_counter() - start)
                offset += n

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(uploads)))
        return time.perf_counter() - start, latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@dataclass
class Part2:
    mbps: dict[str, list[float]] = field(default_factory=lambda: {"gw": [], "base": []})
    p99: dict[str, list[float]] = field(default_factory=lambda: {"gw": [], "base": []})


def run_part2(work: Path, baseline: Path, rounds: int, uploads: int, size: int) -> Part2:
    result = Part2()
    for n in range(rounds + 1):
        for case, path in (("gw", None), ("base", baseline)):
            data_dir = work / f"p2-{case}-{n}"
            with server(data_dir, path) as srv:
                seconds, latencies = asyncio.run(many_tus(srv.url, uploads, size))
            shutil.rmtree(data_dir, ignore_errors=True)
            if n:
                result.mbps[case].append(uploads * size / seconds / 1e6)
                result.p99[case].append(p99(latencies) * 1000)
    return result


def export_ref(ref: str, into: Path) -> Path:
    """The baseline's source tree (git archive of `ref`); returns its src/ for PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(args: argparse.Namespace, size: int, p1: Part1, p2: Part2, command: str) -> str:
    post_mbps = [size / s / 1e6 for s in p1.seconds["post"]]
    tus_mbps = [size / s / 1e6 for s in p1.seconds["tus"]]
    rss = {k: med([float(v) / MIB for v in vals]) for k, vals in p1.rss.items()}
    lines = [
        "## The gateway: POST /upload and the cost of the catalog",
        "",
        f"`{command}` — {args.rounds} interleaved rounds after a warm-up, medians;"
        " a fresh server and data dir per run.",
        "",
        f"### One {size // MIB} MiB file into `upwell serve`",
        "",
        "| case | MB/s | server peak RSS (MiB) |",
        "|---|---|---|",
        f"| `curl -F file=@… POST /upload` | {med(post_mbps):.1f} | {rss['post']:.1f} |",
        f"| `curl -T`, one tus PATCH | {med(tus_mbps):.1f} | {rss['tus']:.1f} |",
        "",
        f"POST /upload / tus throughput: {med(post_mbps) / med(tus_mbps):.2f}",
        "",
        f"### {args.uploads} concurrent tus uploads of {args.upload_mib} MiB"
        f" (PATCHes of {PATCH_SIZE // MIB} MiB)",
        "",
        "| server | aggregate MB/s | p99 PATCH (ms) |",
        "|---|---|---|",
        f"| this tree (catalog, events, metrics) | {med(p2.mbps['gw']):.1f}"
        f" | {med(p2.p99['gw']):.1f} |",
        f"| `{args.baseline}` | {med(p2.mbps['base']):.1f} | {med(p2.p99['base']):.1f} |",
        "",
        f"Ratios (this tree / {args.baseline}): throughput"
        f" {med(p2.mbps['gw']) / med(p2.mbps['base']):.2f},"
        f" p99 PATCH latency {med(p2.p99['gw']) / med(p2.p99['base']):.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 round")
    parser.add_argument("--size-mib", type=int, default=1024, help="part 1 file (default 1024)")
    parser.add_argument("--uploads", type=int, default=100, help="part 2 uploads (default 100)")
    parser.add_argument("--upload-mib", type=int, default=16, help="part 2 size (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--baseline", default="main", help="git ref of the baseline server")
    parser.add_argument("--work-dir", type=Path, default=None, help="temp root (default $TMPDIR)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.uploads, args.upload_mib, args.rounds = 8, 10, 2, 1
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        source = work / "big.bin"
        with source.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        baseline = export_ref(args.baseline, work / "baseline")
        p1 = run_part1(work, source, args.rounds)
        p2 = run_part2(work, baseline, args.rounds, args.uploads, args.upload_mib * MIB)
    command = "python benchmarks/bench_gateway.py" + (" --quick" if args.quick else "")
    markdown = report(args, size, p1, p2, command)
    print(markdown)
    if not args.quick:
        write_section(args.output, "gateway", markdown)
    print(json.dumps({"written": not args.quick}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
