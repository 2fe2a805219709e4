"""`upwell upload` into @tus/server (FileStore, no concatenation); the stored file matches."""

from __future__ import annotations

import json
from pathlib import Path

import peers
import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def stored_uploads(server: peers.Server) -> list[Path]:
    """@tus/file-store keeps each upload as DIR/ID with its state in DIR/ID.json."""
    return sorted(p for p in server.data_dir.iterdir() if p.suffix != ".json")


def assert_stored(server: peers.Server, upload_url: str, source: Path) -> None:
    assert upload_url.startswith(server.url), f"{upload_url} is not under {server.url}"
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
    stored = server.data_dir / upload_id
    assert stored.is_file(), f"no {stored}; the store holds {stored_uploads(server)}"
    difference = peers.first_difference(source, stored)
    assert difference is None, difference


def test_tus_js_client_into_tus_node_server_harness_works(
    tus_node_server: peers.Server, source_file: Path, client_env: dict[str, str]
) -> None:
    # The control: if this fails, the harness or the peers are broken, not upwell.
    argv = peers.tus_js_upload_argv(tus_node_server.url, source_file, chunk_size=peers.TEST_CHUNK)
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, tus_node_server)
    assert_stored(
        tus_node_server, str(peers.parse_last_json_line(result.stdout)["url"]), source_file
    )


@pytest.mark.parametrize("parallel", [1, 4], ids=["sequential", "parallel-4-falls-back"])
def test_upwell_upload_into_tus_node_server(
    upwell_cli: Path,
    tus_node_server: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    parallel: int,
) -> None:
    argv = peers.upwell_upload_argv(
        tus_node_server.url, source_file, chunk_size="1MiB", parallel=parallel
    )
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, tus_node_server)

    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, peers.failure_report(result, tus_node_server)
    events = [json.loads(line) for line in lines]  # --json: every stdout line is one object
    last = events[-1]
    assert last.get("stage") == "complete", last
    assert isinstance(last.get("file_uri"), str), last
    assert_stored(tus_node_server, last["file_uri"], source_file)
    # @tus/server refuses partial uploads (501), so a fallback leaves exactly one upload.
    assert len(stored_uploads(tus_node_server)) == 1, stored_uploads(tus_node_server)
