"""Google's resumable upload protocol and the Gemini File resource, without sockets."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from upwell.errors import ProtocolError
from upwell.protocols import google_resumable as gr

MiB = 1024 * 1024


def test_start_headers_declare_size_and_type_and_the_resumable_protocol() -> None:
    h = gr.start_headers(123, "video/mp4")
    assert h["X-Goog-Upload-Protocol"] == "resumable"
    assert h["X-Goog-Upload-Command"] == "start"
    assert h["X-Goog-Upload-Header-Content-Length"] == "123"
    assert h["X-Goog-Upload-Header-Content-Type"] == "video/mp4"
    assert h["Content-Type"] == "application/json"
    assert not any("key" in k.lower() for k in h)


def test_start_body_wraps_the_display_name_in_a_file_object() -> None:
    assert json.loads(gr.start_body("My Video")) == {"file": {"displayName": "My Video"}}
    assert json.loads(gr.start_body(None)) == {"file": {}}


@pytest.mark.parametrize(
    ("offset", "size", "finalize", "command"),
    [(0, 8 * MiB, False, "upload"), (8 * MiB, 5, True, "upload, finalize")],
)
def test_chunk_headers_carry_command_offset_and_length(
    offset: int, size: int, finalize: bool, command: str
) -> None:
    assert gr.chunk_headers(offset, size, finalize) == {
        "X-Goog-Upload-Command": command,
        "X-Goog-Upload-Offset": str(offset),
        "Content-Length": str(size),
    }


def test_query_and_cancel_are_single_commands() -> None:
    assert gr.query_headers() == {"X-Goog-Upload-Command": "query"}
    assert gr.cancel_headers() == {"X-Goog-Upload-Command": "cancel"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("upload", {"upload"}),
        ("upload, finalize", {"upload", "finalize"}),
        ("Upload,Finalize", {"upload", "finalize"}),
        ("finalize", {"finalize"}),
        ("query", {"query"}),
        ("cancel", {"cancel"}),
        ("start", {"start"}),
    ],
)
def test_parse_command_accepts_the_protocols_commands(value: str, expected: set[str]) -> None:
    assert gr.parse_command(value) == expected


@pytest.mark.parametrize("value", [None, "", "resume", "upload, query", "start, finalize"])
def test_parse_command_refuses_unknown_or_mixed_commands(value: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        gr.parse_command(value)
    assert info.value.status == 400


def test_start_response_gives_the_upload_url_and_granularity() -> None:
    started = gr.parse_start_response(
        {
            "X-Goog-Upload-URL": "https://h/upload/v1beta/files?upload_id=abc",
            "X-Goog-Upload-Chunk-Granularity": "8388608",
            "X-Goog-Upload-Status": "active",
        }
    )
    assert started.upload_url == "https://h/upload/v1beta/files?upload_id=abc"
    assert started.granularity == 8 * MiB


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Goog-Upload-URL": "not a url"},
        {"X-Goog-Upload-URL": "https://h/u", "X-Goog-Upload-Chunk-Granularity": "0"},
        {"X-Goog-Upload-URL": "https://h/u", "X-Goog-Upload-Chunk-Granularity": "8M"},
    ],
)
def test_start_response_without_a_usable_url_or_granularity_is_a_protocol_error(
    headers: dict[str, str],
) -> None:
    with pytest.raises(ProtocolError):
        gr.parse_start_response(headers)


def test_status_headers_round_trip() -> None:
    headers = gr.status_headers("active", 16 * MiB, 8 * MiB)
    assert headers == {
        "X-Goog-Upload-Status": "active",
        "X-Goog-Upload-Size-Received": str(16 * MiB),
        "X-Goog-Upload-Chunk-Granularity": str(8 * MiB),
    }
    status = gr.parse_status(headers)
    assert status == gr.UploadStatus("active", 16 * MiB, 8 * MiB)
    assert status is not None and not status.final
    final = gr.parse_status({"X-Goog-Upload-Status": "FINAL"})
    assert final is not None and final.final and final.size_received is None
    assert gr.parse_status({}) is None


def test_a_malformed_size_received_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        gr.parse_status({"X-Goog-Upload-Status": "active", "X-Goog-Upload-Size-Received": "-1"})


START = {
    "X-Goog-Upload-Protocol": "resumable",
    "X-Goog-Upload-Command": "start",
    "X-Goog-Upload-Header-Content-Length": "42",
    "X-Goog-Upload-Header-Content-Type": "image/png",
}


@pytest.mark.parametrize(
    "body",
    [
        b'{"file": {"display_name": "Cat", "mime_type": "image/png", "size_bytes": 42}}',
        b'{"file": {"displayName": "Cat", "mimeType": "image/png", "sizeBytes": "42"}}',
    ],
)
def test_start_request_accepts_snake_case_and_camel_case_file_fields(body: bytes) -> None:
    req = gr.parse_start_request(START, body)
    assert req == gr.StartRequest(size=42, mime_type="image/png", display_name="Cat", name=None)


def test_start_request_with_no_body_and_a_requested_name() -> None:
    assert gr.parse_start_request(START, b"").display_name is None
    req = gr.parse_start_request(START, b'{"file": {"name": "my-file-1"}}')
    assert req.name == "files/my-file-1"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({**START, "X-Goog-Upload-Protocol": "multipart"}, b""),
        ({**START, "X-Goog-Upload-Command": "upload"}, b""),
        ({k: v for k, v in START.items() if "Length" not in k}, b""),
        (START, b"{not json"),
        (START, b'{"file": "x"}'),
        (START, b'{"file": {"sizeBytes": "41"}}'),
        (START, b'{"file": {"name": "Bad_Name"}}'),
    ],
)
def test_start_request_refuses_what_the_service_refuses(
    headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(ProtocolError) as info:
        gr.parse_start_request(headers, body)
    assert info.value.status == 400


G = 256 * 1024
REAL_SHA256_HASH = (
    "MTgzNjUwZTJkZWY2MzcxMmRlNzg1YjY0MTk3MzIzNWIxZDhjNzIxMjM0NGIwYjM2Y2E2OTcyYmZiNmUxNWE4ZQ=="
)


@pytest.mark.parametrize(
    ("offset", "size", "received", "finalize"),
    [
        (0, G, 0, False),
        (0, 4 * G, 0, False),
        (G, 10, G, True),
        (0, 10 * G + 7, 0, True),
    ],
)
def test_check_chunk_accepts_sequential_granular_chunks(
    offset: int, size: int, received: int, finalize: bool
) -> None:
    total = 10 * G + 7 if size == 10 * G + 7 else (G + 10 if finalize else 20 * G)
    gr.check_chunk(
        offset=offset,
        size=size,
        received=received,
        total=total,
        granularity=G,
        finalize=finalize,
    )


@pytest.mark.parametrize(
    ("offset", "size", "received", "finalize", "words"),
    [
        (G, G, 0, False, "does not match"),
        (0, 5 * 1000 * 1000, 0, False, "multiple of the upload granularity"),
        (0, 30 * G, 0, False, "exceed"),
        (0, G, 0, True, "finalize at"),
    ],
)
def test_check_chunk_refuses_wrong_offsets_sizes_and_early_finalize(
    offset: int, size: int, received: int, finalize: bool, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words) as info:
        gr.check_chunk(
            offset=offset,
            size=size,
            received=received,
            total=20 * G,
            granularity=G,
            finalize=finalize,
        )
    assert info.value.status == 400


def test_sha256_hash_is_base64_of_the_hex_text_as_the_real_api_answers() -> None:
    # A File the real service returned (from a public issue): base64 of the hex digest's text.
    real = (
        "MTgzNjUwZTJkZWY2MzcxMmRlNzg1YjY0MTk3MzIzNWIxZDhjNzIxMjM0NGIwYjM2Y2E2OTcyYmZiNmUxNWE4ZQ=="
    )
    assert gr.sha256_from_api(real) == (
        "183650e2def63712de785b641973235b1d8c7212344b0b36ca6972bfb6e15a8e"
    )
    digest = hashlib.sha256(b"hello").hexdigest()
    assert gr.sha256_from_api(gr.sha256_to_api(digest)) == digest
    # Also forgiving: base64 of the raw 32 bytes, or plain hex.
    raw = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert gr.sha256_from_api(raw) == digest
    assert gr.sha256_from_api(digest.upper()) == digest
    assert gr.sha256_from_api(None) is None
    with pytest.raises(ProtocolError):
        gr.sha256_from_api("bm90IGEgZGlnZXN0")


REAL_FILE = {
    "name": "files/29zm2ddgh73v",
    "mimeType": "image/png",
    "sizeBytes": "120474",
    "createTime": "2025-03-29T12:39:16.599879Z",
    "updateTime": "2025-03-29T12:39:16.599879Z",
    "expirationTime": "2025-03-31T12:39:16.139536164Z",
    "sha256Hash": REAL_SHA256_HASH,
    "uri": "https://generativelanguage.googleapis.com/v1beta/files/29zm2ddgh73v",
    "state": "ACTIVE",
    "source": "UPLOADED",
}


def test_file_resource_parses_the_services_shape_with_size_as_a_string() -> None:
    f = gr.GeminiFile.from_json({"file": REAL_FILE})
    assert f.name == "files/29zm2ddgh73v"
    assert f.size == 120474
    assert f.mime_type == "image/png"
    assert f.state == "ACTIVE"
    assert f.sha256 == "183650e2def63712de785b641973235b1d8c7212344b0b36ca6972bfb6e15a8e"
    assert f.uri.endswith("/v1beta/files/29zm2ddgh73v")
    assert f.expiration_time == "2025-03-31T12:39:16.139536164Z"
    assert f.display_name is None
    assert f.to_json() == REAL_FILE


def test_file_resource_accepts_snake_case_and_keeps_unknown_fields() -> None:
    f = gr.GeminiFile.from_json(
        {"name": "files/a", "size_bytes": 5, "display_name": "x", "videoMetadata": {}}
    )
    assert (f.size, f.display_name, f.extra) == (5, "x", {"videoMetadata": {}})
    assert f.summary()["size"] == 5


@pytest.mark.parametrize("doc", [{}, {"name": ""}, {"name": "files/a", "sizeBytes": "many"}])
def test_a_file_without_name_or_with_a_bad_size_is_a_protocol_error(doc: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        gr.GeminiFile.from_json(doc)


def test_file_list_page_and_token() -> None:
    files, token = gr.parse_file_list({"files": [REAL_FILE], "nextPageToken": "t1"})
    assert [f.name for f in files] == ["files/29zm2ddgh73v"] and token == "t1"
    assert gr.parse_file_list({}) == ([], None)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("abc-123", "files/abc-123"),
        ("files/abc-123", "files/abc-123"),
        ("https://generativelanguage.googleapis.com/v1beta/files/abc-123", "files/abc-123"),
    ],
)
def test_file_names_normalise_from_id_name_or_uri(value: str, name: str) -> None:
    assert gr.normalize_file_name(value) == name


@pytest.mark.parametrize("value", ["", "files/", "ABC", "a_b", "x" * 41, "-a"])
def test_invalid_file_names_are_refused(value: str) -> None:
    with pytest.raises(ProtocolError):
        gr.normalize_file_name(value)


def test_errors_use_googles_json_shape_and_parse_back() -> None:
    body = gr.error_body(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
    assert body["error"]["code"] == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    err = gr.parse_error(json.dumps(body))
    assert err == gr.ApiError(
        "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", "API_KEY_INVALID"
    )
    assert gr.is_key_error(400, err)
    assert gr.parse_error("Not Found\nmore").message == "Not Found"
    assert gr.parse_error("").message == ""


@pytest.mark.parametrize(
    ("status", "message", "is_key"),
    [
        (403, "Method doesn't allow unregistered callers (callers without established ...", True),
        (401, "Request had invalid authentication credentials.", True),
        (403, "You do not have permission to access the File x or it may not exist.", False),
        (400, "Invalid file name.", False),
    ],
)
def test_key_errors_are_told_apart_from_missing_files(
    status: int, message: str, is_key: bool
) -> None:
    err = gr.parse_error(json.dumps(gr.error_body(status, message)))
    assert gr.is_key_error(status, err) is is_key


def test_format_time_is_rfc3339_utc_with_microseconds() -> None:
    from datetime import UTC, datetime

    when = datetime(2025, 3, 29, 12, 39, 16, 599879, tzinfo=UTC)
    assert gr.format_time(when) == "2025-03-29T12:39:16.599879Z"
