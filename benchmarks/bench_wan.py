"""Uploads over an emulated long-distance link: upwell against tus-js-client, tuspy, google-genai.

Run from the repository root after `.ci/run` (or `pip install -e '.[test]'` and
`npm ci --prefix tests/interop/node`):

    .venv/bin/python benchmarks/bench_wan.py --quick     # a smoke run: 24 MiB, 0 and 40 ms, 1 run
    .venv/bin/python benchmarks/bench_wan.py             # 384 MiB, 0/20/40/80 ms, 3 runs, sweep

Every client process talks to its server through `benchmarks/wan_proxy.py` (a process of its
own): `--rtt-ms` of round trip, a link of `--link-rate` shared by all connections and a limit
of `--conn-rate` per connection. Cases at each round trip:
  (u)  upwell upload, defaults           -> upwell serve
  (j)  tus-js-client (Node), defaults    -> upwell serve
  (p)  tuspy, defaults                   -> upwell serve
  (ug) upwell upload --to gemini         -> upwell emulate gemini
  (g)  google-genai files.upload         -> upwell emulate gemini
  (sP-C) upwell upload --parallel P --chunk-size C -> upwell serve   (the sweep)
Rounds are interleaved (every case once per round, after one untimed warm-up round); each run
has a fresh server and data directory and checks the stored bytes' SHA-256 (untimed). The
median of the rounds is reported, and every ratio comes from the same run. Results go to
BENCHMARKS.md (section "wan") and, as JSON, to benchmarks/results/wan.json for plots.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "interop"))

import peers  # noqa: E402

from benchmarks.bench_gemini import KEY, SDK_UPLOAD, start_emulator, stored_files  # noqa: E402
from benchmarks.bench_tus import Measured, checked, machine, measure, upload_url_of  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402
from benchmarks.wan_proxy import parse_rate  # noqa: E402

MIB = 1024 * 1024
PROXY = ROOT / "benchmarks" / "wan_proxy.py"
RESULTS = ROOT / "benchmarks" / "results" / "wan.json"
SWEEP_PARALLEL = (1, 2, 4, 8)
SWEEP_CHUNK = ("5MiB", "10MiB", "20MiB", "40MiB")


@contextlib.contextmanager
def proxy(upstream: str, rtt_ms: float, link: float, conn: float) -> Iterator[str]:
    """A wan_proxy process in front of `upstream` (http://host:port/...); yields its host:port."""
    m = re.match(r"https?://([^/:]+):(\d+)", upstream)
    assert m, upstream
    argv = [
        sys.executable, str(PROXY), "--upstream", f"{m.group(1)}:{m.group(2)}",
        "--rtt-ms", str(rtt_ms), "--link-rate", str(link), "--conn-rate", str(conn),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        hit = re.search(r"listening on (\S+)", line)
        if not hit:
            raise RuntimeError(f"the WAN proxy did not start: {line!r}")
        yield hit.group(1)
    finally:
        peers.stop(proc)  # type: ignore[arg-type]


def via(url: str, hostport: str) -> str:
    return re.sub(r"//[^/]+", "//" + hostport, url, count=1)


# A client runs against (endpoint through the proxy, source file, work dir, env).
Runner = Callable[[str, Path, Path, dict[str, str]], Measured]


@dataclass
class Case:
    key: str
    label: str
    server: str  # "tus" (upwell serve) or "gemini" (the emulator)
    run: Runner
    sweep: bool = False


def upwell_tus(parallel: int | None = None, chunk: str | None = None) -> Runner:
    def run(endpoint: str, src: Path, work: Path, env: dict[str, str]) -> Measured:
        argv = peers.upwell_upload_argv(endpoint, src, chunk_size=chunk, parallel=parallel)
        return checked(measure(argv, env, work))

    return run


def tus_js(endpoint: str, src: Path, work: Path, env: dict[str, str]) -> Measured:
    return checked(measure(peers.tus_js_upload_argv(endpoint, src), env, work))


def tuspy(endpoint: str, src: Path, work: Path, env: dict[str, str]) -> Measured:
    return checked(measure(peers.tuspy_upload_argv(endpoint, src), env, work))


def upwell_gemini(base: str, src: Path, work: Path, env: dict[str, str]) -> Measured:
    argv = [str(peers.upwell_binary()), "upload", str(src), "--to", "gemini", "--json"]
    return checked(measure(argv, {**env, "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": base}, work))


def genai(base: str, src: Path, work: Path, env: dict[str, str]) -> Measured:
    argv = [sys.executable, "-c", SDK_UPLOAD, str(src)]
    env = {**env, "GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": base}
    return checked(measure(argv, env, work))


def cases(sweep: bool) -> list[Case]:
    out = [
        Case("u", "upwell upload (defaults) → upwell serve", "tus", upwell_tus()),
        Case("j", "tus-js-client → upwell serve", "tus", tus_js),
        Case("p", "tuspy → upwell serve", "tus", tuspy),
        Case("ug", "upwell upload --to gemini → emulator", "gemini", upwell_gemini),
        Case("g", "google-genai files.upload → emulator", "gemini", genai),
    ]
    if sweep:
        for p in SWEEP_PARALLEL:
            for c in SWEEP_CHUNK:
                out.append(
                    Case(
                        f"s{p}-{c}",
                        f"upwell --parallel {p} --chunk-size {c}",
                        "tus",
                        upwell_tus(p, c),
                        sweep=True,
                    )
                )
    return out


@dataclass
class Result:
    case: Case
    rtt_ms: float
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    error: str | None = None

    def mb_s(self, size: int) -> float | None:
        return size / 1e6 / statistics.median(self.seconds) if self.seconds else None


def run_one(
    case: Case, rtt_ms: float, args: argparse.Namespace, src: Path, digest: str, root: Path
) -> tuple[Measured, float]:
    """One run of `case` with a fresh server behind a fresh proxy; (measurement, CPU s)."""
    work = Path(tempfile.mkdtemp(prefix=f"{case.key}-", dir=root))
    env = peers.client_env(work / "sessions")
    env = {k: v for k, v in env.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
    try:
        if case.server == "tus":
            with (
                peers.upwell_serve(work / "data", work / "server.log") as server,
                proxy(server.url, rtt_ms, args.link_rate, args.conn_rate) as hp,
            ):
                m = case.run(via(server.url, hp), src, work, env)
                got = peers.sha256_url(upload_url_of(m).replace(hp, server.url.split("/")[2]))
        else:
            emu, base = start_emulator(work / "emu")
            try:
                with proxy(base, rtt_ms, args.link_rate, args.conn_rate) as hp:
                    m = case.run(via(base, hp), src, work, env)
                found = stored_files(work / "emu")
                got = peers.sha256_file(found[0]) if len(found) == 1 else f"{len(found)} files"
            finally:
                peers.stop(emu)  # type: ignore[arg-type]
        if got != digest:
            raise RuntimeError(f"{case.key}: stored bytes differ from the source ({got})")
        return m, m.cpu_seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(
    all_cases: list[Case], args: argparse.Namespace, src: Path, digest: str, root: Path
) -> list[Result]:
    results: list[Result] = []
    for rtt in args.rtts:
        row = [Result(c, rtt) for c in all_cases]
        for rnd in range(-1, args.runs):  # round -1: the warm-up, not counted
            print(f"RTT {rtt:g} ms, round {rnd + 1 if rnd >= 0 else 'warm-up'}", file=sys.stderr)
            for r in row:
                if r.error:
                    continue
                try:
                    m, cpu = run_one(r.case, rtt, args, src, digest, root)
                except Exception as exc:  # one broken case must not hide the others
                    r.error = f"{type(exc).__name__}: {exc}"[:2000]
                    print(f"  [{r.case.key}] FAILED {r.error}", file=sys.stderr)
                    continue
                if rnd >= 0:
                    r.seconds.append(m.seconds)
                    r.cpu.append(cpu)
                    r.rss.append(m.peak_rss)
                print(
                    f"  [{r.case.key}] {src.stat().st_size / 1e6 / m.seconds:.1f} MB/s",
                    file=sys.stderr,
                )
        results += row
    return results


def report(results: list[Result], args: argparse.Namespace, size: int) -> tuple[str, dict]:  # type: ignore[type-arg]
    link, conn = args.link_rate, args.conn_rate
    lines = [
        "## Over an emulated long-distance link",
        "",
        f"Written by `benchmarks/bench_wan.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"`{shlex.join(['benchmarks/bench_wan.py', *sys.argv[1:]])}`.",
        "",
        f"{size / MIB:.0f} MiB of random bytes through `benchmarks/wan_proxy.py` (link "
        f"{link / 1e6:g} MB/s shared by all connections, {conn / 1e6:g} MB/s per connection); "
        f"median of {args.runs} interleaved rounds after a warm-up; wall time of the client "
        "process, start-up included; every client with its own defaults unless the label says.",
        "",
    ]
    data: dict = {"size": size, "link_rate": link, "conn_rate": conn, "runs": args.runs,  # type: ignore[type-arg]
                  "machine": machine(), "cases": []}  # fmt: skip
    for rtt in args.rtts:
        row = [r for r in results if r.rtt_ms == rtt]
        by = {r.case.key: r for r in row}
        lines += [f"### {rtt:g} ms round trip", "",
                  "| case | client → server | MB/s | of link | of one conn | CPU s | RSS MiB |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in row:
            rate = r.mb_s(size)
            data["cases"].append({
                "key": r.case.key, "label": r.case.label, "rtt_ms": rtt, "sweep": r.case.sweep,
                "seconds": r.seconds, "cpu": r.cpu, "rss": r.rss, "error": r.error,
            })  # fmt: skip
            if rate is None:
                lines.append(f"| {r.case.key} | {r.case.label} | failed | | | | |")
                continue
            lines.append(
                f"| {r.case.key} | {r.case.label} | {rate:.1f} | "
                f"{rate * 1e6 / link if link else 0:.2f} | "
                f"{rate * 1e6 / conn if conn else 0:.2f} | "
                f"{statistics.median(r.cpu):.2f} | {statistics.median(r.rss) / MIB:.1f} |"
            )

        u, j, ug, g = (by[k].mb_s(size) if k in by else None for k in ("u", "j", "ug", "g"))
        sweeps = [(r.mb_s(size), r.case.key) for r in row if r.case.sweep and r.seconds]
        lines += ["", "| ratio | value | target |", "|---|---:|---:|"]
        if u and link:
            lines.append(f"| upwell (u) / link | {u * 1e6 / link:.2f} | ≥ 0.8 |")
        if u and j:
            lines.append(f"| upwell (u) / tus-js-client (j) | {u / j:.2f} | ≥ 2.5 |")
        if ug and g:
            lines.append(f"| upwell→gemini (ug) / google-genai (g) | {ug / g:.2f} | ≥ 1.2 |")
        if ug and conn:
            lines.append(f"| upwell→gemini (ug) / one connection | {ug * 1e6 / conn:.2f} | ≥ 0.9 |")
        if u and sweeps:
            best, key = max((s for s in sweeps if s[0] is not None), default=(None, ""))
            if best:
                lines.append(f"| defaults (u) / best of sweep ({key}) | {u / best:.2f} | ≥ 0.9 |")
        lines.append("")
    lines += ["Proxy: `python benchmarks/wan_proxy.py --upstream HOST:PORT --rtt-ms RTT "
              f"--link-rate {link:g} --conn-rate {conn:g}`; clients as in the tus and Gemini "
              "sections, with the proxy's address as the endpoint."]  # fmt: skip
    lines += ["", "![throughput against round trip](benchmarks-wan-throughput.png) "
              "(`benchmarks/plots.py`, from benchmarks/results/wan.json)"]  # fmt: skip
    return "\n".join(lines), data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="24 MiB, 0 and 40 ms, 1 round, no sweep")
    ap.add_argument("--size-mib", type=int, default=None, help="file size (default 384)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3)")
    ap.add_argument("--rtt-ms", default=None, help="comma-separated (default 0,20,40,80)")
    ap.add_argument("--link-rate", type=parse_rate, default=parse_rate("100MB"))
    ap.add_argument("--conn-rate", type=parse_rate, default=parse_rate("25MB"))
    ap.add_argument("--no-sweep", action="store_true", help="skip the --parallel/--chunk-size grid")
    ap.add_argument("--only", help="comma-separated case keys, e.g. u,j")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    quick = args.quick
    args.size_mib = args.size_mib or (24 if quick else 384)
    args.runs = args.runs or (1 if quick else 3)
    args.rtts = [float(x) for x in (args.rtt_ms or ("0,40" if quick else "0,20,40,80")).split(",")]
    missing = peers.missing_node_peers()
    if missing is not None:
        ap.error(missing)
    all_cases = cases(sweep=not (quick or args.no_sweep))
    if args.only:
        keys = set(args.only.split(","))
        all_cases = [c for c in all_cases if c.key in keys]
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="upwell-wan-", dir=args.work_dir) as tmp:
        root = Path(tmp)
        src = peers.write_random_file(root / "source.bin", size)
        results = run_all(all_cases, args, src, peers.sha256_file(src), root)
    text, data = report(results, args, size)
    if not quick:
        write_section(args.output, "wan", text)
    out = RESULTS.with_name("wan-quick.json") if quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(text)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
