"""The README's Python examples run as written against a real `upwell serve`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.files import make_file
from tests.support.processes import serve_process

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
EXPECT = ["Uploaded: http://", "Done: http://", "True http://"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with serve_process(tmp_path_factory.mktemp("readme-serve")) as (url, _proc):
        yield url


def test_readme_has_the_three_layer_examples() -> None:
    assert len(BLOCKS) == len(EXPECT)


@pytest.mark.parametrize("index", range(len(EXPECT)))
def test_readme_python_example_runs_as_written(server: str, tmp_path: Path, index: int) -> None:
    for name, size in [
        ("video.mp4", 3 * 1024 * 1024 + 1),
        ("a.bin", 1000),
        ("b.bin", 2000),
        ("c.bin", 0),
    ]:
        make_file(tmp_path / name, size, seed=size)
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"UPWELL_TARGET": server, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert EXPECT[index] in out.stdout, out.stdout
    assert "Traceback" not in out.stderr
