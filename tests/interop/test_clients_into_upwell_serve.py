"""Other people's tus clients upload into a real `upwell serve`; the bytes it serves back match."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import peers
import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

EXTENSIONS = {
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
}


def assert_served_back(server: peers.Server, upload_url: str, source: Path, tmp_path: Path) -> None:
    assert upload_url.startswith(server.url), f"{upload_url} is not under {server.url}"
    got = peers.fetch(upload_url, tmp_path / "served.bin")
    difference = peers.first_difference(source, got)
    assert difference is None, f"GET {upload_url}: {difference}\n{server.log_tail()}"


def test_upwell_serve_advertises_what_tus_clients_look_for(upwell_serve: peers.Server) -> None:
    request = urllib.request.Request(upwell_serve.url, method="OPTIONS")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status in (200, 204)
        assert resp.headers["Tus-Resumable"] == "1.0.0"
        assert "1.0.0" in resp.headers["Tus-Version"].split(",")
        advertised = {e.strip() for e in resp.headers["Tus-Extension"].split(",")}
        algorithms = {a.strip() for a in resp.headers["Tus-Checksum-Algorithm"].split(",")}
    assert advertised >= EXTENSIONS, f"missing: {sorted(EXTENSIONS - advertised)}"
    assert algorithms >= {"sha1", "sha256", "md5"}


@pytest.mark.parametrize("chunk_size", [None, peers.TEST_CHUNK], ids=["one-patch", "1MiB-chunks"])
def test_tus_js_client_sequential_into_upwell_serve(
    node_peers: None,
    upwell_serve: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    tmp_path: Path,
    chunk_size: int | None,
) -> None:
    argv = peers.tus_js_upload_argv(upwell_serve.url, source_file, chunk_size=chunk_size)
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, upwell_serve)
    out = peers.parse_last_json_line(result.stdout)
    assert_served_back(upwell_serve, str(out["url"]), source_file, tmp_path)


def test_tus_js_client_parallel_uploads_use_concatenation_on_upwell_serve(
    node_peers: None,
    upwell_serve: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # parallelUploads: 3 sends three partial uploads and a final Upload-Concat; @tus/server
    # answers 501 to this, upwell serve must assemble the file.
    argv = peers.tus_js_upload_argv(upwell_serve.url, source_file, parallel=3)
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, upwell_serve)
    out = peers.parse_last_json_line(result.stdout)
    assert_served_back(upwell_serve, str(out["url"]), source_file, tmp_path)


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "sha1-checksum"])
def test_tuspy_into_upwell_serve(
    tuspy: None,
    upwell_serve: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    tmp_path: Path,
    checksum: bool,
) -> None:
    argv = peers.tuspy_upload_argv(
        upwell_serve.url, source_file, chunk_size=peers.TEST_CHUNK, checksum=checksum
    )
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, upwell_serve)
    out = peers.parse_last_json_line(result.stdout)
    assert_served_back(upwell_serve, str(out["url"]), source_file, tmp_path)


def test_curl_single_streamed_patch_into_upwell_serve(
    curl: None,
    upwell_serve: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    tmp_path: Path,
) -> None:
    size = source_file.stat().st_size
    created = peers.run_client(peers.curl_create_argv(upwell_serve.url, size), client_env)
    assert created.returncode == 0, peers.failure_report(created, upwell_serve)
    assert created.stdout.strip(), "POST answered without a Location header"
    upload_url = peers.absolute_upload_url(upwell_serve.url, created.stdout)
    patched = peers.run_client(peers.curl_patch_argv(upload_url, source_file), client_env)
    assert patched.returncode == 0, peers.failure_report(patched, upwell_serve)
    assert_served_back(upwell_serve, upload_url, source_file, tmp_path)
