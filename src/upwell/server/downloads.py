"""GET of an upload: its bytes (Range supported), named and typed from its metadata."""

from __future__ import annotations

import re
import urllib.parse

from aiohttp import hdrs, web

from ..errors import ProtocolError
from ..protocols import tus
from .ids import is_upload_id
from .keys import UPLOADS

# type/subtype with RFC 6838 restricted-name characters; parameters are not accepted.
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


def content_type(filetype: bytes | None) -> str:
    """The upload's `filetype` when it is a plain MIME type, else application/octet-stream."""
    if filetype:
        try:
            value = filetype.decode("ascii").strip().lower()
        except UnicodeDecodeError:
            value = ""
        if _MIME.match(value):
            return value
    return "application/octet-stream"


def content_disposition(filename: bytes | None, fallback: str) -> str:
    """`attachment` with an ASCII `filename` and the exact name as RFC 6266 `filename*`."""
    name = ""
    if filename:
        name = filename.decode("utf-8", errors="replace")
        # A name, not a path: keep the last component, drop control characters.
        name = re.split(r"[/\\]", name)[-1]
        name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or name in (".", ".."):
        name = fallback
    ascii_name = _ASCII_SAFE.sub("_", name)[:200] or fallback
    encoded = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


async def download(request: web.Request) -> web.StreamResponse:
    """The bytes stored so far; 404 unknown, 410 expired."""
    upload_id = request.match_info.get("upload_id", "")
    if not is_upload_id(upload_id):
        raise ProtocolError("no such upload", 404)
    uploads = request.app[UPLOADS]
    upload = await uploads.get(upload_id)
    path = uploads.local_path(upload.id)
    if path is None:
        raise ProtocolError("this store cannot serve downloads yet", 501)
    metadata = tus.decode_metadata(upload.metadata)
    filename = metadata.get("filename") or metadata.get("name")
    headers = {
        hdrs.CONTENT_TYPE: content_type(metadata.get("filetype") or metadata.get("type")),
        hdrs.CONTENT_DISPOSITION: content_disposition(filename, upload.id),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store" if not upload.completed else "private, max-age=0",
    }
    return web.FileResponse(path, headers=headers)
