"""Pictures for BENCHMARKS.md from the benchmarks' JSON (matplotlib, the `bench` extra).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/plots.py            # from benchmarks/results/{wan,scale}.json
    .venv/bin/python benchmarks/plots.py --quick    # from the --quick runs' JSON, into /tmp

Writes, beside BENCHMARKS.md:
  benchmarks-wan-throughput.png   MB/s against round trip, one line per client (bench_wan.py)
  benchmarks-rss.png              client peak RSS against file size (bench_scale.py)
  benchmarks-cpu.png              client CPU seconds per GiB against file size (bench_scale.py)
A missing JSON file skips its pictures, with a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MIB = 1024 * 1024


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        sys.exit("matplotlib is not installed: pip install -e '.[bench]'")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wan_throughput(data: dict[str, Any], out: Path) -> Path:
    plt = _pyplot()
    size = data["size"]
    by_label: dict[str, list[tuple[float, float]]] = {}
    for c in data["cases"]:
        if c["sweep"] or not c["seconds"]:
            continue
        rate = size / 1e6 / statistics.median(c["seconds"])
        by_label.setdefault(c["label"], []).append((c["rtt_ms"], rate))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in by_label.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.axhline(data["link_rate"] / 1e6, color="grey", linestyle="--", linewidth=1, label="link")
    ax.axhline(data["conn_rate"] / 1e6, color="grey", linestyle=":", linewidth=1,
               label="one connection")  # fmt: skip
    ax.set_xlabel("round trip (ms)")
    ax.set_ylabel("MB/s (10^6 bytes/s, start-up included)")
    ax.set_title(f"{size / MIB:.0f} MiB over an emulated link")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out / "benchmarks-wan-throughput.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale(data: dict[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    clients: dict[str, list[dict[str, Any]]] = {}
    for r in data["rows"]:
        clients.setdefault(r["client"], []).append(r)
    paths = []
    for key, ylabel, name, value in (
        ("rss", "client peak RSS (MiB)", "benchmarks-rss.png",
         lambda r: statistics.median(r["peak_rss"]) / MIB),
        ("cpu", "client CPU seconds per GiB", "benchmarks-cpu.png",
         lambda r: statistics.median(r["cpu"]) / (r["size_mib"] / 1024)),
    ):  # fmt: skip
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for client, rows in clients.items():
            rows.sort(key=lambda r: r["size_mib"])
            ax.plot([r["size_mib"] for r in rows], [value(r) for r in rows], marker="o",
                    label=client)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("file size (MiB)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{ylabel} against file size (loopback)")
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
        del key
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the --quick runs' JSON, into /tmp")
    ap.add_argument("--out", type=Path, default=None, help="where the PNGs go")
    args = ap.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    out = args.out or (Path("/tmp") if args.quick else ROOT)
    made: list[Path] = []
    wan, sc = RESULTS / f"wan{suffix}.json", RESULTS / f"scale{suffix}.json"
    if wan.exists():
        made.append(wan_throughput(json.loads(wan.read_text()), out))
    else:
        print(f"{wan} not found: run benchmarks/bench_wan.py first", file=sys.stderr)
    if sc.exists():
        made += scale(json.loads(sc.read_text()), out)
    else:
        print(f"{sc} not found: run benchmarks/bench_scale.py first", file=sys.stderr)
    for p in made:
        print(p)
    return 0 if made else 1


if __name__ == "__main__":
    raise SystemExit(main())
