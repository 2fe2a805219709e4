"""The OpenAI-compatible files protocol, without sockets: multipart framing, File objects,
list pages, the three providers' error shapes, presets."""

from __future__ import annotations

import email.parser
import email.policy
import json

import pytest

from upwell.errors import ProtocolError
from upwell.protocols import openai_files as of
from upwell.protocols import openai_uploads as ou


def test_the_frame_around_a_file_is_a_valid_multipart_body() -> None:
    frame = of.multipart_frame(
        "file", 'we"ird\nname.pdf', "application/pdf", {"purpose": "file-extract"}, "bnd"
    )
    data = b"%PDF-1.7 \r\n--bnd not a boundary\r\n"
    body = frame.head + data + frame.tail
    assert frame.length(len(data)) == len(body)
    assert frame.content_type == "multipart/form-data; boundary=bnd"
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + frame.content_type.encode() + b"\r\n\r\n" + body
    )
    parts = list(msg.iter_parts())  # type: ignore[attr-defined]
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "purpose",
        "file",
    ]
    assert parts[0].get_content() == "file-extract"
    assert parts[1].get_content_type() == "application/pdf"
    assert parts[1].get_content() == data
    assert "\n" not in parts[1].get_filename()
    assert of.new_boundary() != of.new_boundary()


def test_file_objects_from_openai_kimi_and_glm() -> None:
    openai = of.parse_file(
        json.dumps(
            {
                "id": "file-abc",
                "object": "file",
                "bytes": 140,
                "created_at": 1613779121,
                "filename": "mydata.jsonl",
                "purpose": "user_data",
                "status": "processed",
                "expires_at": None,
            }
        )
    )
    assert (openai.id, openai.bytes, openai.purpose) == ("file-abc", 140, "user_data")
    kimi = of.parse_file('{"id": "cn1", "bytes": "12", "status": "ok", "status_details": ""}')
    assert kimi.bytes == 12 and kimi.filename is None
    assert of.OpenAIFile.from_json(kimi.to_json()) == kimi
    for bad in ("[]", "{}", '{"id": "x", "bytes": true}', "not json"):
        with pytest.raises(ProtocolError):
            of.parse_file(bad)


def test_list_pages_with_and_without_has_more() -> None:
    page = of.parse_file_list(
        '{"object": "list", "data": [{"id": "file-1"}, {"id": "file-2"}], "has_more": true}'
    )
    assert [f.id for f in page.files] == ["file-1", "file-2"] and page.has_more
    assert page.last_id == "file-2"
    kimi = of.parse_file_list('{"object": "list", "data": [{"id": "a"}]}')
    assert not kimi.has_more
    assert not of.parse_file_list('{"data": [], "has_more": true}').has_more  # no cursor
    openai, kimi_p, glm = (of.PRESETS[n] for n in ("openai", "kimi", "glm"))
    assert of.list_params(openai, 50, "f-2") == {"limit": "50", "order": "desc", "after": "f-2"}
    assert of.list_params(glm, 50, None) == {"limit": "50"}
    assert of.list_params(kimi_p, 50, "f-2") == {}


@pytest.mark.parametrize(
    ("status", "body", "message", "key_error"),
    [
        (
            401,
            '{"error": {"message": "Incorrect API key provided: sk-ab***yz.", '
            '"type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}',
            "Incorrect API key provided: sk-ab***yz.",
            True,
        ),
        (
            401,
            '{"error": {"message": "Invalid Authentication", '
            '"type": "invalid_authentication_error"}}',
            "Invalid Authentication",
            True,
        ),
        (401, '{"error": {"code": "1002", "message": "Authorization Token非法"}}', "", True),
        (
            429,
            '{"error": {"code": "1302", "message": "您的账户已达到速率限制"}}',
            "您的账户已达到速率限制",
            False,
        ),
        (400, '{"code": 500, "msg": "系统错误", "success": false}', "系统错误", False),
        (502, "<html>Bad gateway</html>\nmore", "<html>Bad gateway</html>", False),
        (503, "", "", False),
    ],
    ids=["openai", "kimi", "glm-key", "glm-rate", "glm-legacy", "html", "empty"],
)
def test_errors_of_every_shape(status: int, body: str, message: str, key_error: bool) -> None:
    err = of.parse_error(body)
    if message:
        assert err.message == message
    assert of.is_key_error(status, err) is key_error


def test_bearer_and_file_ids() -> None:
    assert of.auth_headers("k") == {"Authorization": "Bearer k"}
    assert of.bearer_token({"Authorization": "Bearer  k "}) == "k"
    assert of.bearer_token({"Authorization": "Basic k"}) is None
    assert of.normalize_file_id("https://api.openai.com/v1/files/file-abc/") == "file-abc"
    for bad in ("", "a b", "..", "x?y", "/"):
        with pytest.raises(ProtocolError):
            of.normalize_file_id(bad)


def test_extracted_text_takes_kimi_and_glm_json_or_the_body() -> None:
    doc = of.extraction_doc("hello", "a.txt", "text/plain")
    assert of.extracted_text(json.dumps(doc)) == "hello"
    assert of.extracted_text("plain text") == "plain text"
    assert of.extracted_text('{"other": 1}') == '{"other": 1}'


def test_presets_carry_the_documented_limits() -> None:
    openai, kimi, glm = of.PRESETS["openai"], of.PRESETS["kimi"], of.PRESETS["glm"]
    assert (
        openai.limit_for("user_data") == 512 * of.MiB and openai.limit_for("batch") == 200 * of.MiB
    )
    assert kimi.limit_for("file-extract") == 100 * of.MiB and not kimi.uploads_api
    assert glm.limit_for("file-extract") == 50 * of.MiB
    assert glm.limit_for("code-interpreter") == 20 * of.MiB
    assert (openai.key_env, kimi.key_env, glm.key_env) == (
        "OPENAI_API_KEY",
        "MOONSHOT_API_KEY",
        "ZHIPUAI_API_KEY",
    )


def test_uploads_bodies_and_objects() -> None:
    assert json.loads(ou.create_body(10, "a.bin", "application/pdf", "assistants")) == {
        "bytes": 10,
        "filename": "a.bin",
        "mime_type": "application/pdf",
        "purpose": "assistants",
    }
    assert json.loads(ou.complete_body(["part_1", "part_2"], "ab" * 16)) == {
        "part_ids": ["part_1", "part_2"],
        "md5": "ab" * 16,
    }
    assert "md5" not in json.loads(ou.complete_body([], None))
    up = ou.parse_upload(
        '{"id": "upload_1", "object": "upload", "bytes": 5, "created_at": 100, '
        '"expires_at": 3700, "filename": "a", "purpose": "batch", "status": "completed", '
        '"file": {"id": "file-9", "bytes": 5}}'
    )
    assert up.status == "completed" and up.file is not None and up.file.id == "file-9"
    assert ou.Upload.from_json(up.to_json()) == up
    assert ou.parse_part('{"id": "part_1", "object": "upload.part"}') == "part_1"
    for bad in ('{"id": "u", "status": "odd", "bytes": 1}', '{"status": "pending", "bytes": 1}'):
        with pytest.raises(ProtocolError):
            ou.parse_upload(bad)
    with pytest.raises(ProtocolError):
        ou.parse_part("{}")


def test_expiry_keeps_a_margin() -> None:
    assert not ou.expired_by(None, 10**10, 300)
    assert not ou.expired_by(3700, 3000, 300)
    assert ou.expired_by(3700, 3400, 300)
    assert ou.expired_by(3700, 3700, 0)
