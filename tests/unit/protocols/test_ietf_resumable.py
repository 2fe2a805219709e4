"""The IETF resumable-upload draft's headers, without sockets: per interop version."""

from __future__ import annotations

import pytest

from upwell.errors import ProtocolError
from upwell.protocols import ietf_resumable as ietf


def test_versions_spoken_and_refused() -> None:
    assert ietf.parse_version(None) is None
    assert [ietf.parse_version(v) for v in ("5", " 6 ", "8")] == [5, 6, 8]
    for bad in ("3", "7", "x", "", "\u0666"):
        with pytest.raises(ProtocolError) as info:
            ietf.parse_version(bad)
        assert info.value.status == 400


@pytest.mark.parametrize("version", [5, 6, 8])
def test_upload_complete_from_interop_4_on(version: int) -> None:
    assert ietf.parse_complete({"Upload-Complete": "?1"}, version) is True
    assert ietf.parse_complete({"Upload-Complete": "?0;x=1"}, version) is False
    assert ietf.format_complete(version, True) == {"Upload-Complete": "?1"}
    for headers in ({}, {"Upload-Complete": "1"}, {"Upload-Incomplete": "?0"}):
        with pytest.raises(ProtocolError):
            ietf.parse_complete(headers, version)


def test_upload_incomplete_before_interop_4() -> None:
    assert ietf.parse_complete({"Upload-Incomplete": "?0"}, 3) is True
    assert ietf.format_complete(3, False) == {"Upload-Incomplete": "?1"}


def test_partial_upload_content_type_from_interop_6() -> None:
    ietf.check_append_content_type("application/octet-stream", 5)
    ietf.check_append_content_type(ietf.PARTIAL_UPLOAD, 6)
    with pytest.raises(ProtocolError) as info:
        ietf.check_append_content_type("application/offset+octet-stream", 8)
    assert info.value.status == 415
    assert ietf.append_headers(6, 10, False)["Content-Type"] == ietf.PARTIAL_UPLOAD
    assert "Content-Type" not in ietf.append_headers(5, 10, True)


def test_upload_limit_round_trips_and_ignores_what_it_does_not_know() -> None:
    limit = ietf.Limit(max_size=100, expires=3600)
    assert ietf.format_limit(limit) == "max-size=100, expires=3600"
    assert ietf.parse_limit("max-size=100, expires=3600, min-size=x, future=1;a") == limit
    assert ietf.parse_limit(None) == ietf.Limit()
    assert ietf.format_limit(ietf.Limit()) is None


def test_creation_without_body_says_incomplete() -> None:
    assert ietf.creation_headers(8, 42) == {
        "Upload-Draft-Interop-Version": "8",
        "Upload-Complete": "?0",
        "Upload-Length": "42",
    }
    assert ietf.offered_versions({"Upload-Draft-Interop-Version": "5, 6, 8, 99, x"}) == (8, 6, 5)
