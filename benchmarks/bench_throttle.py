"""Bandwidth throttle accuracy, for real: upload at 2, 10 and 50 MB/s into `upwell serve`.

    .venv/bin/python benchmarks/bench_throttle.py [--seconds 6]

Each rate uploads a file of `rate x seconds` bytes (>= 5 s of sending) through
`ResumableUploader(bandwidth_limit=rate)` into a fresh `upwell serve` process; the achieved
rate is bytes on the wire / upload duration. Writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.files import make_file  # noqa: E402
from tests.support.processes import serve_process  # noqa: E402

from benchmarks.sections import write_section  # noqa: E402
from upwell import ResumableUploader, UploadProgress  # noqa: E402

RATES = (2_000_000, 10_000_000, 50_000_000)


async def measure(url: str, path: Path, rate: int, sessions: Path) -> tuple[float, float, float]:
    """(rate while sending, end-to-end rate, duration)."""
    samples: list[tuple[float, int]] = []

    def on_progress(p: UploadProgress) -> None:
        if p.stage == "uploading":
            samples.append((time.monotonic(), p.bytes_uploaded))

    uploader = ResumableUploader(
        target=url, bandwidth_limit=rate, session_dir=sessions, resume=False, max_parallel=3
    )
    uploader.progress_tracker._min_interval = 0.0
    result = await uploader.upload_file_resumable(path, progress_callback=on_progress)
    if not result.success:
        raise SystemExit(f"upload failed: {result.error}")
    (t0, b0), (t1, b1) = samples[0], samples[-1]
    return (
        (b1 - b0) / (t1 - t0),
        result.bytes_on_wire / result.upload_duration,
        result.upload_duration,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        work = Path(tmp)
        with serve_process(work / "srv") as (url, _proc):
            for rate in RATES:
                src = make_file(work / f"{rate}.bin", int(rate * args.seconds), seed=rate)
                sending, overall, duration = asyncio.run(measure(url, src, rate, work / "sessions"))
                error = (sending - rate) / rate * 100
                rows.append((rate, sending, overall, duration, error))
                print(
                    f"{rate / 1e6:5.0f} MB/s limit: {sending / 1e6:7.3f} MB/s while sending "
                    f"({error:+.2f}%), {overall / 1e6:7.3f} MB/s end to end over {duration:.2f} s"
                )
                src.unlink()
    table = "\n".join(
        f"| {r / 1e6:.0f} MB/s | {s / 1e6:.3f} MB/s | {e:+.2f}% | "
        f"{'yes' if abs(e) <= 5 else 'no'} | {o / 1e6:.3f} MB/s over {d:.2f} s |"
        for r, s, o, d, e in rows
    )
    write_section(
        args.output,
        "throttle",
        f"""## Bandwidth throttle accuracy

`.venv/bin/python benchmarks/bench_throttle.py --seconds {args.seconds:g}`: one shared token
bucket (starts empty, 2 s burst) across 3 parallel parts, into `upwell serve` on loopback.
"While sending" is the slope of bytes handed to the socket from the first to the last
progress event; "end to end" also counts creation, hashing the first chunk and the final
concatenation.

| limit | while sending | error | within ±5% | end to end |
|---|---:|---:|---|---:|
{table}
""",
    )
    return 0 if all(abs(row[-1]) <= 5 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
