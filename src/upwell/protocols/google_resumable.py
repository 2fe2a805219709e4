"""Google's resumable upload protocol (`X-Goog-Upload-*`) and the Gemini File resource, no I/O.

One upload: `start` (declares size and type, answers the upload URL and the chunk granularity),
then `upload` chunks at `X-Goog-Upload-Offset`, the last one `upload, finalize` (answers the
File resource), `query` for the size received after any error, `cancel` to end it. Every chunk
but the last must be a multiple of the granularity (8 MiB at the real service).

Used by both sides: `targets.gemini` builds requests and reads responses with it, and
`emulators.gemini` parses requests and checks chunks with the same functions.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProtocolError
from .http import parse_uint as parse_uint

MiB = 1024 * 1024
DEFAULT_GRANULARITY = 8 * MiB
#: The service's per-file limit ("2 GB"); uploads over it are refused at `start`.
MAX_FILE_SIZE = 2 * 1024 * MiB
#: What one project may store at once (files live 48 h).
PROJECT_QUOTA = 20 * 1024 * MiB

# Header names, as the service and the official SDK spell them.
PROTOCOL = "X-Goog-Upload-Protocol"
COMMAND = "X-Goog-Upload-Command"
OFFSET = "X-Goog-Upload-Offset"
STATUS = "X-Goog-Upload-Status"
SIZE_RECEIVED = "X-Goog-Upload-Size-Received"
GRANULARITY = "X-Goog-Upload-Chunk-Granularity"
UPLOAD_URL = "X-Goog-Upload-URL"
CONTROL_URL = "X-Goog-Upload-Control-URL"
HEADER_CONTENT_LENGTH = "X-Goog-Upload-Header-Content-Length"
HEADER_CONTENT_TYPE = "X-Goog-Upload-Header-Content-Type"
API_KEY_HEADER = "x-goog-api-key"

# Commands (`X-Goog-Upload-Command` is a comma-separated list: "upload, finalize").
START = "start"
UPLOAD = "upload"
FINALIZE = "finalize"
QUERY = "query"
CANCEL = "cancel"
COMMANDS = frozenset({START, UPLOAD, FINALIZE, QUERY, CANCEL})
_VALID_COMMANDS = frozenset(
    frozenset(c) for c in ({START}, {UPLOAD}, {UPLOAD, FINALIZE}, {FINALIZE}, {QUERY}, {CANCEL})
)

# Upload statuses (`X-Goog-Upload-Status`).
ACTIVE = "active"
FINAL = "final"
CANCELLED = "cancelled"

# File states.
STATE_PROCESSING = "PROCESSING"
STATE_ACTIVE = "ACTIVE"
STATE_FAILED = "FAILED"

#: A File's id: lowercase letters, digits and dashes, at most 40 (the service's rule).
FILE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


# -- commands --------------------------------------------------------------------------------
def format_command(*commands: str) -> str:
    return ", ".join(commands)


def parse_command(value: str | None) -> frozenset[str]:
    """The set of commands in `X-Goog-Upload-Command`; 400 if missing or unknown."""
    if value is None or not value.strip():
        raise ProtocolError(f"missing {COMMAND} header", 400)
    commands = frozenset(c.strip().lower() for c in value.split(",") if c.strip())
    unknown = commands - COMMANDS
    if unknown:
        raise ProtocolError(f"unknown upload command {sorted(unknown)[0][:40]!r}", 400)
    if commands not in _VALID_COMMANDS:
        raise ProtocolError(f"{COMMAND} {value.strip()[:60]!r} is not a valid combination", 400)
    return commands


# -- client side: requests -------------------------------------------------------------------
def start_headers(size: int, mime_type: str) -> dict[str, str]:
    """Headers of the `start` request (the API key is added by the caller)."""
    return {
        PROTOCOL: "resumable",
        COMMAND: START,
        HEADER_CONTENT_LENGTH: str(size),
        HEADER_CONTENT_TYPE: mime_type,
        "Content-Type": "application/json",
    }


def start_body(display_name: str | None, mime_type: str | None = None) -> bytes:
    """The JSON body of `start`: the File's fields, in the API's camelCase."""
    file: dict[str, Any] = {}
    if display_name:
        file["displayName"] = display_name
    if mime_type:
        file["mimeType"] = mime_type
    return json.dumps({"file": file}).encode("utf-8")


def chunk_headers(offset: int, size: int, finalize: bool) -> dict[str, str]:
    """Headers of an `upload` (or `upload, finalize`) request of `size` bytes at `offset`."""
    return {
        COMMAND: format_command(UPLOAD, FINALIZE) if finalize else UPLOAD,
        OFFSET: str(offset),
        "Content-Length": str(size),
    }


def query_headers() -> dict[str, str]:
    return {COMMAND: QUERY}


def cancel_headers() -> dict[str, str]:
    return {COMMAND: CANCEL}


# -- client side: responses ------------------------------------------------------------------
@dataclass(frozen=True)
class StartResponse:
    """What `start` answered: where chunks go, and the granularity they must respect."""

    upload_url: str
    granularity: int | None


def parse_start_response(headers: Mapping[str, str]) -> StartResponse:
    url = headers.get(UPLOAD_URL)
    if not url:
        raise ProtocolError(f"the start response has no {UPLOAD_URL} header", 502)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProtocolError(f"the start response's {UPLOAD_URL} is not an http(s) URL", 502)
    raw = headers.get(GRANULARITY)
    granularity = parse_uint(raw, GRANULARITY) if raw is not None else None
    if granularity == 0:
        raise ProtocolError(f"{GRANULARITY} must be positive", 502)
    return StartResponse(url, granularity)


@dataclass(frozen=True)
class UploadStatus:
    """`X-Goog-Upload-Status` and what comes with it (size received, granularity)."""

    status: str
    size_received: int | None = None
    granularity: int | None = None

    @property
    def final(self) -> bool:
        return self.status == FINAL


def parse_status(headers: Mapping[str, str]) -> UploadStatus | None:
    """The upload status a response carries, or None when it carries none."""
    status = headers.get(STATUS)
    if status is None:
        return None
    received = headers.get(SIZE_RECEIVED)
    gran = headers.get(GRANULARITY)
    return UploadStatus(
        status=status.strip().lower(),
        size_received=parse_uint(received, SIZE_RECEIVED) if received is not None else None,
        granularity=parse_uint(gran, GRANULARITY) if gran is not None else None,
    )


def status_headers(
    status: str, size_received: int | None = None, granularity: int | None = None
) -> dict[str, str]:
    """The headers a server answers an upload-URL request with."""
    h = {STATUS: status}
    if size_received is not None:
        h[SIZE_RECEIVED] = str(size_received)
    if granularity is not None:
        h[GRANULARITY] = str(granularity)
    return h


# -- server side: requests -------------------------------------------------------------------
@dataclass(frozen=True)
class StartRequest:
    """A parsed `start`: the declared size and type, and the File fields of the body."""

    size: int
    mime_type: str
    display_name: str | None = None
    name: str | None = None


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def parse_start_request(headers: Mapping[str, str], body: bytes) -> StartRequest:
    """A `start` request, its body's File fields in camelCase or snake_case (SDKs differ)."""
    protocol = headers.get(PROTOCOL, "").strip().lower()
    if protocol != "resumable":
        raise ProtocolError(f"{PROTOCOL} must be 'resumable', got {protocol[:40]!r}", 400)
    if parse_command(headers.get(COMMAND)) != {START}:
        raise ProtocolError(f"{COMMAND} must be 'start' to begin an upload", 400)
    size = parse_uint(headers.get(HEADER_CONTENT_LENGTH), HEADER_CONTENT_LENGTH)
    file: Mapping[str, Any] = {}
    if body.strip():
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError("the start request's body is not JSON", 400) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("file", {}), dict):
            raise ProtocolError("the start request's body must be {'file': {...}}", 400)
        file = doc.get("file", {})
    declared = _field(file, "sizeBytes", "size_bytes")
    if declared is not None and str(declared) != str(size):
        raise ProtocolError(
            f"file.sizeBytes {declared} differs from {HEADER_CONTENT_LENGTH} {size}", 400
        )
    mime = (
        headers.get(HEADER_CONTENT_TYPE)
        or _field(file, "mimeType", "mime_type")
        or "application/octet-stream"
    )
    display = _field(file, "displayName", "display_name")
    name = file.get("name")
    if display is not None and not isinstance(display, str):
        raise ProtocolError("file.displayName must be a string", 400)
    if name is not None:
        if not isinstance(name, str):
            raise ProtocolError("file.name must be a string", 400)
        name = normalize_file_name(name)
    return StartRequest(size=size, mime_type=str(mime), display_name=display, name=name)


def check_chunk(
    *,
    offset: int,
    size: int,
    received: int,
    total: int,
    granularity: int,
    finalize: bool,
) -> None:
    """A chunk the service accepts, or ProtocolError: offsets are sequential, every chunk but
    the last is a multiple of the granularity, and the last one ends at the declared size."""
    if offset != received:
        raise ProtocolError(
            f"the upload offset {offset} does not match the {received} bytes received", 400
        )
    if offset + size > total:
        raise ProtocolError(
            f"{offset + size} bytes would exceed the declared upload size of {total}", 400
        )
    if finalize:
        if offset + size != total:
            raise ProtocolError(
                f"finalize at {offset + size} bytes, but the declared upload size is {total}", 400
            )
    elif size % granularity:
        raise ProtocolError(
            f"a chunk of {size} bytes is not a multiple of the upload granularity {granularity}",
            400,
        )


# -- the File resource -----------------------------------------------------------------------
def normalize_file_name(value: str) -> str:
    """`files/<id>` from `<id>`, `files/<id>` or a file's URI; ProtocolError if not a name."""
    text = value.strip()
    if "://" in text:
        path = urlsplit(text).path
        idx = path.rfind("/files/")
        text = path[idx + 1 :] if idx >= 0 else path
    if text.startswith("files/"):
        text = text[len("files/") :]
    if not FILE_ID.match(text):
        raise ProtocolError(
            f"{value[:60]!r} is not a file name: use files/<id> with lowercase letters, "
            "digits and dashes",
            400,
        )
    return f"files/{text}"


def sha256_to_api(hex_digest: str) -> str:
    """The service's `sha256Hash`: base64 of the hex digest's text (as the real API answers)."""
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


def sha256_from_api(value: str | None) -> str | None:
    """The hex SHA-256 from `sha256Hash`: base64 of the hex text, or of the raw 32 bytes."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw.hex()
    text = raw.decode("ascii", errors="replace").lower()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    raise ProtocolError(f"sha256Hash {value[:20]!r}… is not a SHA-256 digest", 502)


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as the service writes timestamps."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class GeminiFile:
    """A File resource (`files/<id>`); `sha256` is hex, `size` an int (the API sends a string)."""

    name: str
    uri: str = ""
    size: int = 0
    mime_type: str = ""
    display_name: str | None = None
    state: str = ""
    sha256: str | None = None
    create_time: str | None = None
    update_time: str | None = None
    expiration_time: str | None = None
    source: str | None = None
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GeminiFile:
        """Parse a File, bare or wrapped in `{"file": ...}`, camelCase or snake_case."""
        if "file" in doc and isinstance(doc["file"], Mapping):
            doc = doc["file"]
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError("the File resource has no name", 502)
        raw_size = _field(doc, "sizeBytes", "size_bytes")
        try:
            size = int(raw_size) if raw_size is not None else 0
        except (TypeError, ValueError):
            raise ProtocolError(f"sizeBytes {str(raw_size)[:20]!r} is not a number", 502) from None
        known = {
            "name",
            "uri",
            "sizeBytes",
            "size_bytes",
            "mimeType",
            "mime_type",
            "displayName",
            "display_name",
            "state",
            "sha256Hash",
            "sha256_hash",
            "createTime",
            "create_time",
            "updateTime",
            "update_time",
            "expirationTime",
            "expiration_time",
            "source",
            "error",
        }
        err = doc.get("error")
        return cls(
            name=name,
            uri=str(doc.get("uri") or ""),
            size=size,
            mime_type=str(_field(doc, "mimeType", "mime_type") or ""),
            display_name=_field(doc, "displayName", "display_name"),
            state=str(doc.get("state") or ""),
            sha256=sha256_from_api(_field(doc, "sha256Hash", "sha256_hash")),
            create_time=_field(doc, "createTime", "create_time"),
            update_time=_field(doc, "updateTime", "update_time"),
            expiration_time=_field(doc, "expirationTime", "expiration_time"),
            source=doc.get("source"),
            error=dict(err) if isinstance(err, Mapping) else None,
            extra={k: v for k, v in doc.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        """The File as the service writes it: camelCase, sizeBytes a string, sha256Hash base64."""
        doc: dict[str, Any] = {"name": self.name}
        if self.display_name:
            doc["displayName"] = self.display_name
        doc["mimeType"] = self.mime_type
        doc["sizeBytes"] = str(self.size)
        for key, value in (
            ("createTime", self.create_time),
            ("updateTime", self.update_time),
            ("expirationTime", self.expiration_time),
        ):
            if value:
                doc[key] = value
        if self.sha256:
            doc["sha256Hash"] = sha256_to_api(self.sha256)
        doc["uri"] = self.uri
        doc["state"] = self.state
        if self.source:
            doc["source"] = self.source
        if self.error:
            doc["error"] = self.error
        doc.update(self.extra)
        return doc

    def summary(self) -> dict[str, Any]:
        """A flat, snake_case view for programs and people (CLI `--json`)."""
        return {
            "name": self.name,
            "uri": self.uri,
            "display_name": self.display_name,
            "mime_type": self.mime_type,
            "size": self.size,
            "state": self.state,
            "sha256": self.sha256,
            "create_time": self.create_time,
            "expiration_time": self.expiration_time,
            **({"error": self.error} if self.error else {}),
        }


def parse_file_list(doc: Mapping[str, Any]) -> tuple[list[GeminiFile], str | None]:
    """A `files.list` page: the files and the next page's token (None on the last page)."""
    items = doc.get("files") or []
    if not isinstance(items, list):
        raise ProtocolError("files.list answered 'files' that is not a list", 502)
    token = doc.get("nextPageToken") or doc.get("next_page_token") or None
    return [GeminiFile.from_json(item) for item in items], token


# -- errors ----------------------------------------------------------------------------------
# google.rpc.Code names for the HTTP statuses the service answers with.
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
API_KEY_INVALID = "API_KEY_INVALID"


def error_body(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    """Google's JSON error shape: {"error": {"code", "message", "status"[, "details"]}}."""
    err: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": RPC_STATUS.get(code, "UNKNOWN"),
    }
    if reason:
        err["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": err}


@dataclass(frozen=True)
class ApiError:
    """A parsed error answer: Google's message, its status name and ErrorInfo reason."""

    message: str
    status: str | None = None
    reason: str | None = None


def parse_error(text: str) -> ApiError:
    """The error in a response body: Google's JSON shape, or the first line of plain text."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        reason = None
        for detail in err.get("details") or []:
            if isinstance(detail, dict) and detail.get("reason"):
                reason = str(detail["reason"])
                break
        message = str(err.get("message") or "").strip().splitlines()
        return ApiError(
            message=message[0][:300] if message else "",
            status=err.get("status"),
            reason=reason,
        )
    lines = text.strip().splitlines()
    return ApiError(message=lines[0][:300] if lines else "")


def is_key_error(status: int, error: ApiError) -> bool:
    """Whether an answer means the API key is missing, wrong or not allowed."""
    if status in (401, 403) and error.status in ("UNAUTHENTICATED", "PERMISSION_DENIED", None):
        text = error.message.lower()
        return status == 401 or "api key" in text or "unregistered callers" in text
    return status == 400 and (
        error.reason == API_KEY_INVALID or "api key not valid" in error.message.lower()
    )
