"""Every header parser, fed what hypothesis makes up: a value or a typed ProtocolError, never
another exception. Seeded (derandomize) and bounded for CI; UPWELL_FUZZ_EXAMPLES=5000 for more.
A failure prints the smallest input that shows it, and rerunning replays it."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from upwell.errors import ProtocolError
from upwell.protocols import google_resumable, tus
from upwell.protocols.http import parse_repr_digest, parse_retry_after, parse_uint

FUZZ = settings(
    max_examples=int(os.environ.get("UPWELL_FUZZ_EXAMPLES", "300")),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
)

# What a header value can hold (aiohttp hands out latin-1 text), weighted toward the pieces
# the parsers look for, so the fuzz reaches past the first check.
PIECES = st.sampled_from(
    [" ", ",", ";", "=", ":", "final;", "partial", "/files/", "sha1 ", "sha256 ", "md5 ",
     "sha-256=:", "bytes=", "-", "0", "1", "9" * 20, "dGVzdA==", "YQ",
     "\u00b2", "\u0661", "\t", "\u00e9"]
)  # fmt: skip
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
VALUES = st.lists(st.one_of(PIECES, TEXT), max_size=8).map("".join)
B64 = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())


def typed_or_value(parse: Callable[[str], Any], value: str) -> None:
    try:
        parse(value)
    except ProtocolError as exc:
        assert 400 <= exc.status < 500, exc.status
        assert "\n" not in str(exc)


@FUZZ
@given(VALUES)
def test_upload_offset_and_length(value: str) -> None:
    typed_or_value(lambda v: parse_uint(v, "Upload-Offset"), value)


@FUZZ
@given(st.lists(st.one_of(VALUES, st.tuples(TEXT, B64).map(" ".join)), max_size=5).map(",".join))
def test_upload_metadata(value: str) -> None:
    typed_or_value(tus.decode_metadata, value)


@FUZZ
@given(st.dictionaries(st.from_regex(r"[!-+\--~]{1,12}", fullmatch=True), st.binary(max_size=30)))
def test_upload_metadata_round_trips(items: dict[str, bytes]) -> None:
    assert tus.decode_metadata(tus.encode_metadata(dict(items))) == items


@FUZZ
@given(VALUES)
def test_upload_concat(value: str) -> None:
    typed_or_value(tus.parse_concat, value)


@FUZZ
@given(
    st.one_of(VALUES, st.tuples(st.sampled_from(["sha1", "sha256", "md5", "x"]), B64).map(" ".join))
)
def test_upload_checksum(value: str) -> None:
    typed_or_value(tus.parse_checksum, value)


@FUZZ
@given(VALUES)
def test_dates_and_digests_the_client_reads_are_none_when_malformed(value: str) -> None:
    tus.parse_expires(value)
    parse_retry_after(value)
    digest = parse_repr_digest(value)
    assert digest is None or len(digest) == 32


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["Tus-Version", "Tus-Extension", "Tus-Max-Size",
                         "Tus-Checksum-Algorithm", "Accept-Encoding"]),
        VALUES,
    )
)  # fmt: skip
def test_server_info_takes_whatever_a_server_says(headers: dict[str, str]) -> None:
    info = tus.ServerInfo.from_headers(headers)
    assert info.max_size is None or info.max_size > 0


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["X-Goog-Upload-Status", "X-Goog-Upload-Size-Received",
                         "X-Goog-Upload-Chunk-Granularity", "X-Goog-Upload-Command"]),
        VALUES,
    )
)  # fmt: skip
def test_google_resumable_headers(headers: dict[str, str]) -> None:
    typed_or_value(lambda _: google_resumable.parse_status(headers), "")
    typed_or_value(google_resumable.parse_command, headers.get("X-Goog-Upload-Command", ""))
