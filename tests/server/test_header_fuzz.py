"""`upwell serve` fed made-up values of every header it parses (Upload-Length, -Offset,
-Metadata, -Concat, -Checksum, -Defer-Length, Range): a 4xx with one line of reason or a
success, never a 5xx, and an upload's bytes change only by an accepted PATCH.
Seeded (derandomize) and bounded for CI; UPWELL_FUZZ_EXAMPLES=5000 for more."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.threaded_server import ThreadedServer, threaded_server
from upwell.server.settings import ServerSettings

from ..unit.protocols.test_header_fuzz import VALUES

FUZZ = settings(
    max_examples=int(os.environ.get("UPWELL_FUZZ_EXAMPLES", "150")),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
TUS = {"Tus-Resumable": "1.0.0"}
# What http.client can put in a header: no CR, LF or NUL.
HEADER_VALUES = VALUES.map(
    lambda v: v.replace("\r", "").replace("\n", "").replace("\0", "")
).filter(lambda v: all(ord(c) < 256 for c in v))


def send(
    server: ThreadedServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes, bool]:
    """(status, body, whether upwell's app answered rather than aiohttp's HTTP parser)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=15)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Tus-Resumable") is not None
    finally:
        conn.close()


def assert_answered(status: int, body: bytes, by_app: bool) -> None:
    assert status < 500, (status, body)
    # A header aiohttp's parser refuses (a control character) is a 400 before the app runs.
    if status >= 400 and body and by_app:
        text = body.decode("utf-8", "replace").strip()
        assert text and "\n" not in text and "Traceback" not in text, text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    with threaded_server(ServerSettings(port=0, data_dir=data_dir, max_size=1 << 20)) as s:
        yield s


def new_upload(server: ThreadedServer, data: bytes = b"") -> str:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=15)
    try:
        headers = {**TUS, "Upload-Length": "10"}
        if data:
            headers["Content-Type"] = "application/offset+octet-stream"
        conn.request("POST", "/files/", body=data or None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201
        return "/files/" + (resp.getheader("Location") or "").rsplit("/", 1)[1]
    finally:
        conn.close()


def offset(server: ThreadedServer, path: str) -> str:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=15)
    try:
        conn.request("HEAD", path, headers=TUS)
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Upload-Offset") or ""
    finally:
        conn.close()


CREATION = st.sampled_from(["Upload-Length", "Upload-Metadata", "Upload-Concat",
                            "Upload-Defer-Length", "Upload-Checksum"])  # fmt: skip


@FUZZ
@given(st.dictionaries(CREATION, HEADER_VALUES, min_size=1), st.binary(max_size=16))
def test_creation_headers(server: ThreadedServer, headers: dict[str, str], body: bytes) -> None:
    sent = {**TUS, **headers}
    if body:
        sent["Content-Type"] = "application/offset+octet-stream"
    assert_answered(*send(server, "POST", "/files/", sent, body))


PATCHING = st.sampled_from(["Upload-Offset", "Upload-Length", "Upload-Checksum"])


@FUZZ
@given(st.dictionaries(PATCHING, HEADER_VALUES, min_size=1), st.binary(min_size=1, max_size=8))
def test_patch_headers_change_nothing_unless_accepted(
    server: ThreadedServer, headers: dict[str, str], body: bytes
) -> None:
    path = new_upload(server, b"ab")
    sent = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "2"}
    sent.update(headers)
    status, answer, by_app = send(server, "PATCH", path, sent, body)
    assert_answered(status, answer, by_app)
    assert offset(server, path) == (str(2 + len(body)) if status == 204 else "2")


@FUZZ
@given(HEADER_VALUES)
def test_range_of_a_download(server: ThreadedServer, value: str) -> None:
    path = new_upload(server, b"0123456789")
    assert_answered(*send(server, "GET", path, {"Range": value}))


@FUZZ
@given(HEADER_VALUES)
def test_method_override_and_version(server: ThreadedServer, value: str) -> None:
    path = new_upload(server)
    for headers in ({"X-HTTP-Method-Override": value, **TUS}, {"Tus-Resumable": value}):
        assert_answered(*send(server, "GET", path, headers))
        assert_answered(*send(server, "POST", "/files/", {**headers, "Upload-Length": "1"}))
