"""The README's Python examples run as written: against a real `upwell serve`, and (Gemini)
against the emulator that `upwell emulate gemini` runs."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.files import make_file
from tests.support.processes import UPWELL, free_port, serve_process, wait_http_ok

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# What each example prints when it worked, in README order.
EXPECT = [
    "Uploaded: http://",
    "Done: http://",
    "True http://",
    "Done! File: http://",
    "files/",
    "Kimi extracts the text of this file.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_process(tmp_path_factory.mktemp("readme-serve")) as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data = tmp_path_factory.mktemp("readme-gemini")
    proc = subprocess.Popen(
        [*UPWELL, "emulate", "gemini", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/v1beta/files?key=x", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readme_has_every_example_this_test_knows() -> None:
    assert len(BLOCKS) == len(EXPECT)


@pytest.mark.parametrize("index", range(len(EXPECT)))
def test_readme_python_example_runs_as_written(
    server: str, gemini: str, tmp_path: Path, index: int
) -> None:
    files = [("video.mp4", 3 * 1024 * 1024 + 1), ("a.bin", 1000), ("b.bin", 2000), ("c.bin", 0)]
    for name, size in [*files, ("talk.mp4", 1024 * 1024)]:
        make_file(tmp_path / name, size, seed=size)
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    env = {
        "UPWELL_TARGET": server,
        "GEMINI_API_KEY": "readme-key",
        "GEMINI_BASE_URL": gemini,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert EXPECT[index] in out.stdout, out.stdout
    assert "Traceback" not in out.stderr
