"""`upwell upload` memory stays flat in file size: slices in flight, not whole chunks or files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import make_file
from tests.support.processes import serve_process

MiB = 1024 * 1024
# Runs `upwell upload` as the only child of a small parent, so the kernel's high-water mark of
# its children is exactly the upload's peak RSS.
PEAK = (
    "import json, resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(json.dumps({'rc': rc, 'kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with serve_process(tmp_path_factory.mktemp("mem-serve")) as (url, _proc):
        yield url


def peak_rss_mib(url: str, path: Path, sessions: Path) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK,
            sys.executable,
            "-m",
            "upwell",
            "upload",
            str(path),
            "--to",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "UPLOAD_SESSION_DIR": str(sessions)},
    )
    result = json.loads(out.stdout)
    assert result["rc"] == 0, out.stderr
    return float(result["kib"]) / 1024


def test_peak_rss_is_flat_in_file_size_and_under_64_mib(server: str, tmp_path: Path) -> None:
    small = make_file(tmp_path / "small.bin", 16 * MiB, seed=1)
    small_peak = peak_rss_mib(server, small, tmp_path / "s1")
    small.unlink()
    big = make_file(tmp_path / "big.bin", 192 * MiB, seed=2)
    big_peak = peak_rss_mib(server, big, tmp_path / "s2")
    assert big_peak <= 64, f"{big_peak:.1f} MiB"
    # Twelve times the file, about the same memory: nothing grows with the file.
    assert big_peak - small_peak < 12, (small_peak, big_peak)
