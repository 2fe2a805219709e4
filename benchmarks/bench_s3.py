"""upwell vs boto3's `upload_file` (s3transfer) into the same moto S3 server.

Run from the repository root, with the test extras (moto[server], boto3, aiobotocore):

    .venv/bin/python benchmarks/bench_s3.py             # 1 GiB file, 3 interleaved rounds
    .venv/bin/python benchmarks/bench_s3.py --quick     # 32 MiB, 1 round: a smoke run only

Cases, each client with its own defaults unless the label says otherwise:
  (u)    `upwell upload FILE --to s3://bench/u/`             (AWS_ENDPOINT_URL at moto)
  (u64)  the same with `--chunk-size 64MiB`                   (peak RSS whatever the part size)
  (b)    boto3 `client.upload_file(FILE, bucket, key)`        (s3transfer: 8 MiB parts, 10 threads)
One moto server (`python -m moto.server`, its own process) serves every run; it keeps objects
in memory, so each object is checked (size and SHA-256, untimed) and deleted after its run.
Time is the client process's wall clock, start-up included; CPU seconds (user + system) and
peak RSS are GNU time's (see bench_tus.measure). After one untimed warm-up round, the cases run
in interleaved rounds and the medians are reported, with ratios from the same run. moto is the
bottleneck for wall time here, so CPU per GiB and memory carry the comparison.
Writes its section of BENCHMARKS.md (not with --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_tus import Measured, checked, measure  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
OUT = ROOT / "BENCHMARKS.md"
BUCKET = "upwell-bench"
BOTO3_UPLOAD = (
    "import sys, boto3\nboto3.client('s3').upload_file(sys.argv[1], sys.argv[2], sys.argv[3])\n"
)


@dataclass
class Result:
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)

    def add(self, m: Measured) -> None:
        self.seconds.append(m.seconds)
        self.cpu.append(m.cpu_seconds)
        self.peak_rss.append(m.peak_rss)

    def mb_s(self, size: int) -> float:
        return size / statistics.median(self.seconds) / 1e6

    def cpu_per_gib(self, size: int) -> float:
        return statistics.median(self.cpu) / (size / GIB)

    def rss_mib(self) -> float:
        return statistics.median(self.peak_rss) / MIB


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


def make_random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 8 * MIB)
            f.write(os.urandom(n))
            remaining -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


def verify_and_delete(client: object, key: str, size: int, digest: str, label: str) -> None:
    obj = client.get_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    h = hashlib.sha256()
    got = 0
    for block in obj["Body"].iter_chunks(MIB):
        h.update(block)
        got += len(block)
    client.delete_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    if got != size or h.hexdigest() != digest:
        raise RuntimeError(f"{label}: stored object differs ({got} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 MiB, 1 round, no report")
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    size = (args.size_mib or (32 if args.quick else 1024)) * MIB
    rounds = args.rounds or (1 if args.quick else 3)
    import boto3

    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp, moto_server() as endpoint:
        work = Path(tmp)
        src = work / "bench.bin"
        make_random_file(src, size)
        digest = sha256_file(src)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "UPLOAD_SESSION_DIR": str(work / "sessions"),
        }
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        client.create_bucket(Bucket=BUCKET)
        upwell = [sys.executable, "-m", "upwell", "upload", str(src), "--no-resume", "--to"]
        cases: dict[str, tuple[list[str], str]] = {
            "u": ([*upwell, f"s3://{BUCKET}/u/"], "u/bench.bin"),
            "u64": ([*upwell, f"s3://{BUCKET}/u64/", "--chunk-size", "64MiB"], "u64/bench.bin"),
            "b": ([sys.executable, "-c", BOTO3_UPLOAD, str(src), BUCKET, "b/bench.bin"], ""),
        }
        labels = {
            "u": "(u) upwell upload --to s3://…",
            "u64": "(u64) upwell upload --chunk-size 64MiB",
            "b": "(b) boto3 upload_file (s3transfer)",
        }
        results = {k: Result(labels[k]) for k in cases}
        for r in range(rounds + 1):  # round 0 warms caches and bytecode, untimed
            for key, (cmd, obj) in cases.items():
                m = checked(measure(cmd, env, work))
                verify_and_delete(client, obj or "b/bench.bin", size, digest, key)
                if r > 0:
                    results[key].add(m)
                print(
                    f"round {r} {key}: {size / m.seconds / 1e6:.0f} MB/s, "
                    f"cpu {m.cpu_seconds:.2f} s, rss {m.peak_rss / MIB:.0f} MiB",
                    file=sys.stderr,
                )
    u, b = results["u"], results["b"]
    lines = [
        "## S3: upwell vs boto3 upload_file (s3transfer), into moto",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/bench_s3.py', *(argv or sys.argv[1:])])}`"
        f": {size // MIB} MiB of random bytes, median of {rounds} interleaved rounds. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"boto3 {importlib.metadata.version('boto3')}, aiobotocore "
        f"{importlib.metadata.version('aiobotocore')}, moto {importlib.metadata.version('moto')}.",
        "",
        "| case | MB/s | client CPU s/GiB | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for res in results.values():
        lines.append(
            f"| {res.label} | {res.mb_s(size):.0f} | {res.cpu_per_gib(size):.2f} | "
            f"{res.rss_mib():.0f} |"
        )
    lines += [
        "",
        f"upwell / s3transfer: throughput {u.mb_s(size) / b.mb_s(size):.2f}x, CPU per GiB "
        f"{u.cpu_per_gib(size) / max(b.cpu_per_gib(size), 1e-9):.2f}x, peak RSS "
        f"{u.rss_mib() / b.rss_mib():.2f}x.",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.quick:
        write_section(OUT, "s3", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
