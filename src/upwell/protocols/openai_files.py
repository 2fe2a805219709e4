"""OpenAI-compatible files APIs (OpenAI, Moonshot Kimi, Zhipu GLM), sans-IO.

`POST {base}/files` takes a multipart/form-data body with a `purpose` field and a `file` part;
`GET {base}/files` lists, `GET|DELETE {base}/files/{id}` shows or deletes, and
`GET {base}/files/{id}/content` serves the bytes (OpenAI) or the extracted text (Kimi, GLM).
This module builds the multipart framing around a body streamed from elsewhere (the bytes
themselves never pass through here), reads File objects and list pages, and reads errors in
OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) and the variants Kimi and
GLM answer. The target and the emulator share it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

AUTHORIZATION = "Authorization"
FILE_FIELD = "file"
PURPOSE_FIELD = "purpose"

_FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def auth_headers(api_key: str) -> dict[str, str]:
    """The only place a key goes: a bearer token."""
    return {AUTHORIZATION: f"Bearer {api_key}"}


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The key in an `Authorization: Bearer …` header (for the emulator), or None."""
    value = headers.get(AUTHORIZATION, "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def normalize_file_id(name: str) -> str:
    """A file id from what a user typed: `file-abc`, or a URI ending in it; a ProtocolError for
    anything that cannot be one (so it never reaches a URL path)."""
    name = name.strip().rstrip("/")
    if "/" in name:
        name = name.rsplit("/", 1)[-1]
    if not _FILE_ID.match(name):
        raise ProtocolError(f"{name[:60]!r} is not a file id (like file-abc123)", 400)
    return name


# -- multipart framing -----------------------------------------------------------------------
def new_boundary() -> str:
    return "upwell-" + secrets.token_hex(16)


def _quote(value: str) -> str:
    """A header parameter value in quotes, as browsers and the SDK's httpx write it."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class MultipartFrame:
    """The bytes around one streamed file part: `head` (every other field, then the file
    part's headers), the file's bytes (not here), then `tail`. `content_type` goes in the
    request header; `length(n)` is the whole body's length for an n-byte file."""

    boundary: str
    head: bytes
    tail: bytes

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def length(self, size: int) -> int:
        return len(self.head) + size + len(self.tail)


def multipart_frame(
    file_field: str,
    filename: str,
    mime_type: str,
    fields: Mapping[str, str] | None = None,
    boundary: str | None = None,
) -> MultipartFrame:
    """The framing of a multipart/form-data body whose last part is a file."""
    b = boundary or new_boundary()
    out = bytearray()
    for key, value in (fields or {}).items():
        out += f'--{b}\r\nContent-Disposition: form-data; name="{_quote(key)}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    out += (
        f'--{b}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
        f'filename="{_quote(filename)}"\r\nContent-Type: {mime_type}\r\n\r\n'
    ).encode()
    return MultipartFrame(b, bytes(out), f"\r\n--{b}--\r\n".encode())


# -- File objects ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenAIFile:
    """A File object as OpenAI, Kimi and GLM answer it (fields they lack are None)."""

    id: str
    bytes: int | None
    created_at: int | None = None
    filename: str | None = None
    purpose: str | None = None
    status: str | None = None
    status_details: str | None = None
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OpenAIFile:
        file_id = doc.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ProtocolError("the File object has no id", 502)
        return cls(
            id=file_id,
            bytes=_int(doc.get("bytes"), "bytes"),
            created_at=_int(doc.get("created_at"), "created_at"),
            filename=_str(doc.get("filename")),
            purpose=_str(doc.get("purpose")),
            status=_str(doc.get("status")),
            status_details=_str(doc.get("status_details")),
            expires_at=_int(doc.get("expires_at"), "expires_at"),
            raw=dict(doc),
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
        }
        if self.status_details is not None:
            doc["status_details"] = self.status_details
        if self.expires_at is not None:
            doc["expires_at"] = self.expires_at
        return doc


def _int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ProtocolError(f"the File object's {what} is not a number", 502)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProtocolError(f"the File object's {what} is not a number", 502)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_file(text: str) -> OpenAIFile:
    """A File object from a response body."""
    return OpenAIFile.from_json(_object(text, "File object"))


@dataclass(frozen=True)
class FilePage:
    files: list[OpenAIFile]
    has_more: bool
    last_id: str | None


def parse_file_list(text: str) -> FilePage:
    """A `GET /files` page: OpenAI's `{"data", "has_more", "last_id"}`; Kimi's and GLM's
    pages may lack `has_more` (then there is no next page)."""
    doc = _object(text, "file list")
    data = doc.get("data")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ProtocolError("the file list's data is not a list", 502)
    files = [OpenAIFile.from_json(item) for item in data if isinstance(item, dict)]
    last = doc.get("last_id") or (files[-1].id if files else None)
    return FilePage(files, bool(doc.get("has_more")) and bool(files), last)


def extracted_text(text: str) -> str | None:
    """The text a `GET /files/{id}/content` answered: Kimi's and GLM's JSON `{"content": …}`
    for extracted files, else the body itself (OpenAI serves a text file's bytes)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict) and isinstance(doc.get("content"), str):
        return str(doc["content"])
    return text


def extraction_doc(content: str, filename: str, mime_type: str) -> dict[str, Any]:
    """What Kimi and GLM answer for an extracted file's content (for the emulator)."""
    return {
        "content": content,
        "file_type": mime_type,
        "filename": filename,
        "title": "",
        "type": "file",
    }


def list_params(preset: Preset, limit: int, after: str | None) -> dict[str, str]:
    """Query parameters for one page as the provider documents them: OpenAI `limit`, `order`,
    `after`; GLM `limit` (1-100) and `after`; Kimi none (one answer holds every file)."""
    if not preset.list_paging:
        return {}
    params = {"limit": str(limit)}
    if preset.list_order:
        params["order"] = preset.list_order
    if after:
        params["after"] = after
    return params


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise ProtocolError(f"the {what} is not JSON", 502) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"the {what} is not a JSON object", 502)
    return doc


# -- errors ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class APIError:
    message: str = ""
    type: str | None = None
    code: str | None = None
    param: str | None = None


# GLM's business codes for a missing, wrong or expired key (its docs' 1000-1004).
_GLM_AUTH_CODES = frozenset({"1000", "1001", "1002", "1003", "1004"})


def parse_error(text: str) -> APIError:
    """The error in a response body: OpenAI's `{"error": {...}}` (Kimi's is the same with
    fewer fields; GLM's `code` is a string of digits), a bare `{"message"|"msg", "code"}`, or
    the first line of a body that is not JSON."""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        return APIError(message=first)
    if not isinstance(doc, dict):
        return APIError()
    err = doc.get("error", doc)
    if isinstance(err, str):
        return APIError(message=err[:500])
    if not isinstance(err, dict):
        return APIError()
    message = err.get("message") or err.get("msg") or doc.get("message") or ""
    code = err.get("code")
    return APIError(
        message=str(message)[:500],
        type=_str(err.get("type")),
        code=None if code is None else str(code),
        param=_str(err.get("param")),
    )


def is_key_error(status: int, err: APIError) -> bool:
    """Whether the service refused the key (rather than the request)."""
    if status == 401:
        return True
    if err.code in _GLM_AUTH_CODES:
        return True
    kind = (err.type or "") + " " + (err.code or "")
    return "authentication" in kind or "invalid_api_key" in kind


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> str:
    """An error in OpenAI's shape (for the emulator)."""
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


# -- presets and limits ----------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """What differs between OpenAI-compatible providers: where, which key, which purpose, and
    the documented per-file limits (per purpose where the provider says so)."""

    name: str
    label: str
    key_env: str
    base_env: str
    default_base: str
    default_purpose: str
    max_file_size: int
    purpose_limits: Mapping[str, int] = field(default_factory=dict)
    uploads_api: bool = False  # offers OpenAI's Uploads API (parts, complete)
    list_paging: bool = True  # GET /files takes limit/after
    list_order: str | None = None  # the value of its `order` parameter for newest first

    def limit_for(self, purpose: str) -> int:
        return self.purpose_limits.get(purpose, self.max_file_size)


# Limits as the providers documented them when this was written (see README, "OpenAI, Kimi
# and GLM"): OpenAI 512 MB a file (Batch 200 MB), 8 GB through Uploads; Kimi 100 MB a file;
# GLM file-extract 50 MB, batch 100 MB, code-interpreter and agent 20 MB.
PRESETS: dict[str, Preset] = {
    "openai": Preset(
        name="openai",
        label="OpenAI",
        key_env="OPENAI_API_KEY",
        base_env="OPENAI_BASE_URL",
        default_base="https://api.openai.com/v1",
        default_purpose="user_data",
        max_file_size=512 * MiB,
        purpose_limits={"batch": 200 * MiB},
        uploads_api=True,
        list_order="desc",
    ),
    "kimi": Preset(
        name="kimi",
        label="Moonshot Kimi",
        key_env="MOONSHOT_API_KEY",
        base_env="MOONSHOT_BASE_URL",
        default_base="https://api.moonshot.ai/v1",
        default_purpose="file-extract",
        max_file_size=100 * MiB,
        list_paging=False,
    ),
    "glm": Preset(
        name="glm",
        label="Zhipu GLM",
        key_env="ZHIPUAI_API_KEY",
        base_env="ZHIPUAI_BASE_URL",
        default_base="https://open.bigmodel.cn/api/paas/v4",
        default_purpose="file-extract",
        max_file_size=50 * MiB,
        purpose_limits={
            "batch": 100 * MiB,
            "code-interpreter": 20 * MiB,
            "agent": 20 * MiB,
        },
    ),
}
