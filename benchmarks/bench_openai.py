"""upwell vs the official `openai` SDK uploading into the OpenAI-compatible emulator.

Run from the repository root, with the test extras (openai) installed:

    .venv/bin/python benchmarks/bench_openai.py            # 1 GiB, 3 timed rounds
    .venv/bin/python benchmarks/bench_openai.py --quick    # 16 MiB, 1 round, no BENCHMARKS.md

Cases, each client with its own defaults unless the label says otherwise, into one
`upwell emulate openai` process on loopback (its single-request limit raised to the file's
size, so both single-request cases send the whole file in one POST):
  (a) `upwell upload FILE --to openai`  — one streamed multipart POST /files
      (UPWELL_FILES_MAX_SIZE raised to the file's size; the real limit is 512 MB)
  (b) openai SDK `client.files.create(file=Path(FILE), purpose="user_data")`
  (c) `upwell upload FILE --to openai --multipart` — the Uploads API, parallel parts
  (d) the same with `--chunk-size 64MiB` (the largest part: RSS must not grow with it)
  (e) openai SDK `client.uploads.upload_file_chunked(...)` — 64 MiB parts, one after another
Rounds: one untimed warm-up round, then every case once per round, the order reversed every
other round, so the machine's slow moments fall on all cases alike; medians are reported.
Time is the client process's wall clock, start-up included; CPU is its user + system seconds
(GNU time), per GiB; peak RSS the client's kernel high-water mark (GNU time %M; see
bench_tus.measure). After each run the stored bytes' SHA-256 is checked (untimed) and the file
deleted. Writes its section of BENCHMARKS.md (not with --quick, unless --out is given).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_gemini import make_random_file, sha256_file  # noqa: E402
from benchmarks.bench_tus import checked, measure  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
KEY = "sk-bench-key"
OUT = ROOT / "BENCHMARKS.md"
UPWELL = [sys.executable, "-m", "upwell"]

SDK_FILES_CREATE = (
    "import sys\nfrom pathlib import Path\nimport openai\n"
    "f = openai.OpenAI().files.create(file=Path(sys.argv[1]), purpose='user_data')\n"
    "print(f.id)\n"
)
SDK_CHUNKED = (
    "import sys\nfrom pathlib import Path\nimport openai\n"
    "u = openai.OpenAI().uploads.upload_file_chunked(file=Path(sys.argv[1]),"
    " mime_type='application/octet-stream', purpose='batch')\n"
    "print(u.file.id)\n"
)


@dataclass
class Result:
    key: str
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)

    def mb_s(self, size: int) -> float:
        return size / 1e6 / statistics.median(self.seconds)

    def cpu_per_gib(self, size: int) -> float | None:
        return statistics.median(self.cpu) * GIB / size if self.cpu else None

    def rss_mib(self) -> float:
        return statistics.median(self.peak_rss) / MIB


def start_emulator(data_dir: Path, max_file_size: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            *UPWELL,
            "emulate",
            "openai",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--api-key-env",
            "BENCH_KEY",
            "--max-file-size",
            str(max_file_size),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_KEY": KEY, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+?) ", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, match.group(1)


def verify_and_clear(data_dir: Path, digest: str, label: str) -> None:
    found = sorted((data_dir / "files").glob("*.bin"))
    if len(found) != 1:
        raise RuntimeError(f"{label}: expected one stored file, found {len(found)}")
    if sha256_file(found[0]) != digest:
        raise RuntimeError(f"{label}: the stored bytes differ from the source")
    for p in (data_dir / "files").iterdir():
        p.unlink()


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


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
    work = Path(tempfile.mkdtemp(prefix="bench-openai-", dir=args.work_dir))
    emu_dir = work / "emu"
    src = work / "source.bin"
    make_random_file(src, size)
    digest = sha256_file(src)
    proc, url = start_emulator(emu_dir, size)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "UPLOAD_", "UPWELL_", "MOONSHOT_", "ZHIPUAI_"))
    }
    env = {**base, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{url}/v1"}
    upload = [*UPWELL, "upload", str(src), "--to", "openai"]
    cases: dict[str, tuple[str, list[str], dict[str, str]]] = {
        "a": (
            "upwell upload (one POST /files)",
            upload,
            {**env, "UPWELL_FILES_MAX_SIZE": str(size)},
        ),
        "b": (
            "openai SDK files.create",
            [sys.executable, "-c", SDK_FILES_CREATE, str(src)],
            env,
        ),
        "c": ("upwell upload --multipart (Uploads API)", [*upload, "--multipart"], env),
        "d": (
            "upwell upload --multipart --chunk-size 64MiB",
            [*upload, "--multipart", "--chunk-size", "64MiB"],
            env,
        ),
        "e": (
            "openai SDK uploads.upload_file_chunked",
            [sys.executable, "-c", SDK_CHUNKED, str(src)],
            env,
        ),
    }
    results = {k: Result(k, label) for k, (label, _, _) in cases.items()}
    try:
        for rnd in range(runs + 1):
            order = list(cases) if rnd % 2 == 0 else list(reversed(cases))
            for key in order:
                label, argv_, case_env = cases[key]
                # A fresh session store: every run is a first upload, not a resumed one.
                sessions = Path(tempfile.mkdtemp(prefix="sessions-", dir=work))
                m = checked(measure(argv_, {**case_env, "UPLOAD_SESSION_DIR": str(sessions)}, work))
                verify_and_clear(emu_dir, digest, label)
                shutil.rmtree(sessions, ignore_errors=True)
                if rnd == 0:
                    continue  # the warm-up round
                r = results[key]
                r.seconds.append(m.seconds)
                r.peak_rss.append(m.peak_rss)
                if m.cpu_seconds:
                    r.cpu.append(m.cpu_seconds)
                print(
                    f"round {rnd} ({key}) {label}: {m.seconds:.2f} s, "
                    f"{size / 1e6 / m.seconds:.0f} MB/s, CPU {m.cpu_seconds:.2f} s, "
                    f"peak RSS {m.peak_rss / MIB:.1f} MiB",
                    flush=True,
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    r = results
    ratios = [
        (
            "upwell one POST / SDK files.create, MB/s (a/b)",
            r["a"].mb_s(size) / r["b"].mb_s(size),
            "≥ 1.0",
            r["a"].mb_s(size) >= r["b"].mb_s(size),
        ),
        (
            "upwell --multipart / SDK chunked helper, MB/s (c/e)",
            r["c"].mb_s(size) / r["e"].mb_s(size),
            "≥ 1.0",
            r["c"].mb_s(size) >= r["e"].mb_s(size),
        ),
    ]
    worst_rss = max(r[k].rss_mib() for k in "acd")
    lines = [
        "## OpenAI files and Uploads API: upwell vs the `openai` SDK (emulator, loopback)",
        "",
        f"Written by `benchmarks/bench_openai.py`: `benchmarks/bench_openai.py --size-mib "
        f"{size_mib} --runs {runs}`.",
        "",
        f"{size_mib} MiB of random bytes into one `upwell emulate openai` process; median of "
        f"{runs} rounds after an untimed warm-up round (every case once per round, the order "
        "reversed every other round). Time: the client process's wall clock, start-up "
        "included. CPU: its user + system seconds per GiB. Peak RSS: its kernel high-water "
        "mark. The emulator's single-request limit is raised to the file's size (the real "
        "service: 512 MB), and upwell's with UPWELL_FILES_MAX_SIZE, for cases a and b.",
        "",
        "| case | client | MB/s | CPU s/GiB | peak RSS (MiB) | runs (s) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for res in r.values():
        lines.append(
            f"| {res.key} | {res.label} | {res.mb_s(size):.0f} | "
            f"{fmt(res.cpu_per_gib(size), '.2f')} | {res.rss_mib():.1f} | "
            + ", ".join(f"{s:.2f}" for s in res.seconds)
            + " |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for name, value, target, met in ratios:
        lines.append(f"| {name} | {value:.2f} | {target} | {'yes' if met else '**no**'} |")
    lines.append(
        f"| upwell's worst peak RSS, any part size (a, c, d) | {worst_rss:.1f} MiB | ≤ 64 MiB | "
        f"{'yes' if worst_rss <= 64 else '**no**'} |"
    )
    versions = {p: importlib.metadata.version(p) for p in ("upwell", "openai", "aiohttp")}
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
    ]
    text = "\n".join(lines)
    if out is not None:
        write_section(out, "openai", text)
    print(text)
    met = all(m for *_, m in ratios) and worst_rss <= 64
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
