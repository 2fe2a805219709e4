import base64
import hashlib

import pytest

from upwell.errors import ProtocolError
from upwell.protocols import tus


def test_metadata_round_trips_unicode_and_key_only_pairs() -> None:
    header = tus.encode_metadata({"filename": "vidéo 1.mp4", "filetype": "video/mp4", "flag": None})
    assert tus.decode_metadata(header) == {
        "filename": "vidéo 1.mp4".encode(),
        "filetype": b"video/mp4",
        "flag": b"",
    }


@pytest.mark.parametrize("header", [None, "", "   "])
def test_empty_metadata_is_accepted(header: str | None) -> None:
    assert tus.decode_metadata(header) == {}


@pytest.mark.parametrize(
    "header", ["filename !!notbase64", "a b c", "dup YQ==,dup YQ==", "ké YQ=="]
)
def test_malformed_metadata_is_a_400(header: str) -> None:
    with pytest.raises(ProtocolError) as err:
        tus.decode_metadata(header)
    assert err.value.status == 400


@pytest.mark.parametrize("value", ["0", "42", "9223372036854775807"])
def test_uint_headers_parse(value: str) -> None:
    assert tus.parse_uint(value, "Upload-Offset") == int(value)


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "", "99999999999999999999", "1e3", "0x10"])
def test_bad_uint_headers_are_a_400(value: str) -> None:
    with pytest.raises(ProtocolError) as err:
        tus.parse_uint(value, "Upload-Offset")
    assert err.value.status == 400


def test_missing_uint_header_is_a_400() -> None:
    with pytest.raises(ProtocolError):
        tus.parse_uint(None, "Upload-Length")


def test_version_check_answers_412() -> None:
    tus.check_version("1.0.0")
    for bad in (None, "0.2.2", "2"):
        with pytest.raises(ProtocolError) as err:
            tus.check_version(bad)
        assert err.value.status == 412


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_round_trip(algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"hello").digest()
    assert tus.parse_checksum(tus.format_checksum(algorithm, digest)) == (algorithm, digest)


@pytest.mark.parametrize(
    "header",
    [
        "crc32 AAAA",
        "sha1 not-base64!",
        "sha256 " + base64.b64encode(b"short").decode(),
        "sha1",
    ],
)
def test_bad_checksum_headers_are_a_400(header: str) -> None:
    with pytest.raises(ProtocolError) as err:
        tus.parse_checksum(header)
    assert err.value.status == 400


def test_concat_headers() -> None:
    assert tus.parse_concat(None) is None
    assert tus.parse_concat("partial") == tus.Concat(final=False)
    final = tus.parse_concat(tus.format_concat_final(["/files/a", "http://h/files/b"]))
    assert final == tus.Concat(final=True, parts=("/files/a", "http://h/files/b"))
    for bad in ("final;", "whole", "partial;x"):
        with pytest.raises(ProtocolError):
            tus.parse_concat(bad)


def test_server_info_reads_options_headers_forgivingly() -> None:
    info = tus.ServerInfo.from_headers(
        {
            "Tus-Version": "1.0.0,0.2.2",
            "Tus-Extension": "creation, termination,checksum,concatenation",
            "Tus-Max-Size": "1073741824",
            "Tus-Checksum-Algorithm": "md5,sha1",
        }
    )
    assert info.supports("concatenation") and not info.supports("expiration")
    assert info.max_size == 1073741824
    assert info.checksum_algorithm() == "sha1"
    bare = tus.ServerInfo.from_headers({"Tus-Max-Size": "junk"})
    assert bare.max_size is None and bare.checksum_algorithm() is None


def test_expires_round_trip() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert tus.parse_expires(tus.format_expires(when)) == when
    assert tus.parse_expires("not a date") is None
