"""tus-js-client 4.x speaking the IETF resumable-upload draft (`protocol: 'ietf-draft-05'`,
interop version 6, and 'ietf-draft-03', interop 5) into `upwell serve`: byte-identical."""

from __future__ import annotations

from pathlib import Path

import peers
import pytest
from test_clients_into_upwell_serve import assert_served_back

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.mark.parametrize("protocol", ["ietf-draft-05", "ietf-draft-03"])
@pytest.mark.parametrize(
    ("chunk_size", "during_creation"),
    [(None, False), (peers.TEST_CHUNK, False), (peers.TEST_CHUNK, True)],
    ids=["one-append", "1MiB-appends", "1MiB-first-in-creation"],
)
def test_tus_js_client_ietf_into_upwell_serve(
    node_peers: None,
    upwell_serve: peers.Server,
    source_file: Path,
    client_env: dict[str, str],
    tmp_path: Path,
    protocol: str,
    chunk_size: int | None,
    during_creation: bool,
) -> None:
    argv = peers.tus_js_upload_argv(
        upwell_serve.url,
        source_file,
        chunk_size=chunk_size,
        protocol=protocol,
        upload_during_creation=during_creation,
    )
    result = peers.run_client(argv, client_env)
    assert result.returncode == 0, peers.failure_report(result, upwell_serve)
    out = peers.parse_last_json_line(result.stdout)
    assert_served_back(upwell_serve, str(out["url"]), source_file, tmp_path)
