"""Fixtures for interop tests: peers no one here wrote, as real processes on loopback.

In CI (CI=true) a missing peer fails the test with what to install; elsewhere it skips.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers


def _unavailable(reason: str) -> None:
    if peers.in_ci():
        pytest.fail(f"interop peer missing in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def node_peers() -> None:
    """node and tus-js-client, @tus/server, @tus/file-store installed under tests/interop/node."""
    reason = peers.missing_node_peers()
    if reason is not None:
        _unavailable(reason)


@pytest.fixture
def tuspy() -> None:
    try:
        import tusclient  # noqa: F401
    except ImportError:
        _unavailable("PyPI package tuspy is not installed; run `pip install -e '.[test]'`")


@pytest.fixture
def curl() -> None:
    if shutil.which("curl") is None:
        _unavailable("`curl` is not on PATH; install it (apt-get install curl)")


@pytest.fixture
def upwell_cli() -> Path:
    """The `upwell` command is what these tests exercise: missing it is a failure, never a skip."""
    exe = peers.upwell_binary()
    if not exe.exists():
        pytest.fail(f"{exe} does not exist; run `pip install -e '.[test]'`", pytrace=False)
    return exe


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    return peers.write_random_file(tmp_path / "source.bin", peers.TEST_FILE_SIZE)


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    return peers.client_env(tmp_path / "client-sessions")


@pytest.fixture
def upwell_serve(upwell_cli: Path, tmp_path: Path) -> Iterator[peers.Server]:
    """A real `upwell serve` process, answering GET /healthz."""
    with peers.upwell_serve(tmp_path / "upwell-data", tmp_path / "upwell-serve.log") as server:
        yield server


@pytest.fixture
def tus_node_server(node_peers: None, tmp_path: Path) -> Iterator[peers.Server]:
    """A real @tus/server (+ @tus/file-store) process, answering GET /healthz."""
    with peers.tus_node_server(tmp_path / "tus-node-data", tmp_path / "tus-server.log") as server:
        yield server
