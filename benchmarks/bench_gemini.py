"""upwell vs the official google-genai SDK uploading into the Gemini Files API emulator.

Run from the repository root, with the test extras (google-genai) installed:

    .venv/bin/python benchmarks/bench_gemini.py                 # 256 MiB, median of 3 runs
    .venv/bin/python benchmarks/bench_gemini.py --size-mib 64 --runs 1   # a quick look

Both clients upload the same file of random bytes, each with its own defaults, to one
`upwell emulate gemini` process on loopback (the real service's 8 MiB granularity; files
ACTIVE at once, so neither waits on processing):
  (u) `upwell upload FILE --to gemini`           (GEMINI_BASE_URL at the emulator)
  (s) google-genai `client.files.upload(file=FILE)` (GOOGLE_GEMINI_BASE_URL at the emulator)
Time is the wall clock of the client process, start-up included; peak RSS is the client's
(GNU time's %M when installed, and psutil polling of its process tree; see bench_tus.measure).
Runs alternate between the clients; after each, the stored bytes' SHA-256 is checked (untimed)
and the file deleted. Writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
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

from benchmarks.bench_tus import Measured, checked, measure  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
KEY = "bench-key"
OUT = ROOT / "BENCHMARKS.md"

UPWELL = [sys.executable, "-m", "upwell"]
SDK_UPLOAD = (
    "import sys\n"
    "from google import genai\n"
    "client = genai.Client()\n"
    "f = client.files.upload(file=sys.argv[1])\n"
    "print(f.name, f.uri)\n"
)


@dataclass
class Result:
    label: str
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)

    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def mb_s(self, size: int) -> float:
        return size / 1e6 / self.median_s()

    def rss_mib(self) -> float:
        return statistics.median(self.peak_rss) / MIB


def make_random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            *UPWELL,
            "emulate",
            "gemini",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--api-key-env",
            "BENCH_KEY",
            "--processing-polls",
            "0",
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


def stored_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "files").glob("*.bin"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MIB):
            h.update(block)
    return h.hexdigest()


def verify_and_clear(data_dir: Path, digest: str, label: str) -> None:
    found = stored_files(data_dir)
    if len(found) != 1:
        raise RuntimeError(f"{label}: expected one stored file, found {len(found)}")
    if sha256_file(found[0]) != digest:
        raise RuntimeError(f"{label}: the stored bytes differ from the source")
    for p in (data_dir / "files").iterdir():
        p.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="bench-gemini-", dir=args.work_dir))
    emu_dir = work / "emu"
    src = work / "source.mp4"
    make_random_file(src, size)
    digest = sha256_file(src)
    proc, url = start_emulator(emu_dir)
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "UPLOAD_"))
    }
    clients = {
        "upwell": (
            [*UPWELL, "upload", str(src), "--to", "gemini"],
            {**base_env, "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": url},
        ),
        "google-genai": (
            [sys.executable, "-c", SDK_UPLOAD, str(src)],
            {**base_env, "GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url},
        ),
    }
    results = {name: Result(name) for name in clients}
    try:
        for run in range(args.runs):
            order = list(clients) if run % 2 == 0 else list(reversed(clients))
            for name in order:
                argv_, env = clients[name]
                # A fresh session store: every run is a first upload, not a resumed one.
                sessions = Path(tempfile.mkdtemp(prefix="sessions-", dir=work))
                m: Measured = checked(
                    measure(argv_, {**env, "UPLOAD_SESSION_DIR": str(sessions)}, work)
                )
                verify_and_clear(emu_dir, digest, name)
                results[name].seconds.append(m.seconds)
                results[name].peak_rss.append(m.peak_rss)
                print(
                    f"run {run + 1} {name}: {m.seconds:.2f} s, "
                    f"{size / 1e6 / m.seconds:.0f} MB/s, peak RSS {m.peak_rss / MIB:.1f} MiB",
                    flush=True,
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    up, sdk = results["upwell"], results["google-genai"]
    speed = up.mb_s(size) / sdk.mb_s(size)
    rss = up.rss_mib() / sdk.rss_mib()
    versions = {p: importlib.metadata.version(p) for p in ("upwell", "google-genai", "aiohttp")}
    lines = [
        "## Gemini Files API: upwell vs google-genai `files.upload` (emulator, loopback)",
        "",
        f"{args.size_mib} MiB of random bytes, median of {args.runs} runs per client, each "
        "with its own defaults, into one `upwell emulate gemini` process (8 MiB granularity, as "
        "the real service). Time: wall clock of the client process, start-up included. Peak "
        "RSS: the client process's.",
        "",
        "| client | median time (s) | MB/s | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for r in (up, sdk):
        lines.append(f"| {r.label} | {r.median_s():.2f} | {r.mb_s(size):.0f} | {r.rss_mib():.1f} |")
    lines += [
        "",
        f"- upwell / google-genai throughput: **{speed:.2f}x** (target ≥ 1.0x)",
        f"- upwell / google-genai peak RSS: **{rss:.2f}x** (target < 1.0x)",
        "",
        f"Reproduce: `.venv/bin/python benchmarks/bench_gemini.py --size-mib {args.size_mib} "
        f"--runs {args.runs}`. Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(args.out, "gemini", "\n".join(lines))
    print("\n".join(lines))
    return 0 if speed >= 1.0 and rss < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
