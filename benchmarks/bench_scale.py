"""Client peak RSS and CPU per GiB against file size, on loopback into `upwell serve`.

Run from the repository root after `.ci/run` (or `pip install -e '.[test]'` and
`npm ci --prefix tests/interop/node`):

    .venv/bin/python benchmarks/bench_scale.py --quick   # 8 and 32 MiB, one run: a smoke test
    .venv/bin/python benchmarks/bench_scale.py           # 64 MiB, 256 MiB, 1 GiB, 4 GiB; 3 runs

Clients, each with its own defaults: upwell upload, tus-js-client, tuspy, and `curl -T` (one
PATCH, hashes nothing: the floor). Every run has a fresh server and checks the stored bytes
(untimed). Peak RSS is the client's kernel high-water mark (GNU time %M), CPU its user + system
seconds (GNU time %U + %S); the median of the runs is kept. Writes BENCHMARKS.md (section
"scale") and benchmarks/results/scale.json, which benchmarks/plots.py draws.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "interop"))

import peers  # noqa: E402

from benchmarks.bench_tus import (  # noqa: E402
    GNU_TIME,
    Measured,
    curl_put,
    machine,
    tus_js,
    tuspy,
    upwell_upload,
    verify,
)
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
CLIENTS = {
    "upwell": upwell_upload(),
    "tus-js-client": tus_js,
    "tuspy": tuspy,
    "curl -T": curl_put,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 and 32 MiB, one run")
    ap.add_argument("--sizes-mib", default=None, help="comma-separated (default 64,256,1024,4096)")
    ap.add_argument("--runs", type=int, default=None, help="runs per size and client (default 3)")
    ap.add_argument("--only", help="comma-separated client names")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    sizes = [
        int(x)
        for x in (args.sizes_mib or ("8,32" if args.quick else "64,256,1024,4096")).split(",")
    ]
    runs = args.runs or (1 if args.quick else 3)
    if GNU_TIME is None:
        ap.error("GNU time (/usr/bin/time) is needed for the client's own peak RSS and CPU")
    missing = peers.missing_node_peers()
    if missing is not None:
        ap.error(missing)
    clients = {k: v for k, v in CLIENTS.items() if not args.only or k in args.only.split(",")}
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="upwell-scale-", dir=args.work_dir) as tmp:
        root = Path(tmp)
        for size_mib in sizes:
            src = peers.write_random_file(root / f"random-{size_mib}MiB.bin", size_mib * MIB)
            digest = peers.sha256_file(src)
            got: dict[str, list[Measured]] = {k: [] for k in clients}
            for i in range(runs):  # rounds: every client once per round
                for name, client in clients.items():
                    work = Path(tempfile.mkdtemp(dir=root))
                    try:
                        with peers.upwell_serve(work / "data", work / "server.log") as server:
                            results, url = client(server, src, work, peers.client_env(work / "s"))
                            verify(server, url, digest)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    m = Measured(
                        argv=results[-1].argv,
                        returncode=0,
                        seconds=sum(r.seconds for r in results),
                        peak_rss=max(r.peak_rss for r in results),
                        stdout="",
                        stderr="",
                        cpu_seconds=sum(r.cpu_seconds for r in results),
                    )
                    got[name].append(m)
                    print(
                        f"{size_mib} MiB {name} run {i + 1}: {m.seconds:.2f} s, "
                        f"RSS {m.peak_rss / MIB:.1f} MiB, CPU {m.cpu_seconds:.2f} s",
                        file=sys.stderr,
                    )
            for name, ms in got.items():
                rows.append({
                    "client": name, "size_mib": size_mib,
                    "seconds": [m.seconds for m in ms],
                    "peak_rss": [m.peak_rss for m in ms],
                    "cpu": [m.cpu_seconds for m in ms],
                })  # fmt: skip
            src.unlink()
    lines = [
        "## Client memory and CPU against file size",
        "",
        f"Written by `benchmarks/bench_scale.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"`{shlex.join(['benchmarks/bench_scale.py', *sys.argv[1:]])}`. Loopback into "
        f"`upwell serve`, median of {runs} runs; RSS and CPU are the client process's (GNU time).",
        "",
        "| client | file | MB/s | peak RSS (MiB) | CPU s | CPU s per GiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        size = int(r["size_mib"]) * MIB  # type: ignore[call-overload]
        sec = statistics.median(r["seconds"])  # type: ignore[arg-type]
        cpu = statistics.median(r["cpu"])  # type: ignore[arg-type]
        rss = statistics.median(r["peak_rss"]) / MIB  # type: ignore[arg-type]
        lines.append(
            f"| {r['client']} | {r['size_mib']} MiB | {size / 1e6 / sec:.1f} | {rss:.1f} | "
            f"{cpu:.2f} | {cpu / (size / 2**30):.2f} |"
        )
    lines += [
        "",
        "Pictures (`benchmarks/plots.py`, from benchmarks/results/scale.json):",
        "",
        "![client peak RSS against file size](benchmarks-rss.png)",
        "![client CPU seconds per GiB](benchmarks-cpu.png)",
    ]
    text = "\n".join(lines)
    if not args.quick:
        write_section(args.output, "scale", text)
    out = RESULTS.with_name("scale-quick.json") if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "runs": runs, "rows": rows}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
