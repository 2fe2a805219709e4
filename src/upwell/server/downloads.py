"""GET of an upload: its bytes (Range supported), named and typed from its metadata."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator, Callable

from aiohttp import hdrs, web

from ..errors import ProtocolError
from ..protocols import tus
from .ids import is_upload_id
from .keys import UPLOADS
from .state import Upload
from .uploads import Uploads

# type/subtype with RFC 6838 restricted-name characters; parameters are not accepted.
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")
SLICE = 1024 * 1024


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
    segments = await uploads.segments(upload.id)
    metadata = tus.decode_metadata(upload.metadata)
    filename = metadata.get("filename") or metadata.get("name")
    headers = {
        hdrs.CONTENT_TYPE: content_type(metadata.get("filetype") or metadata.get("type")),
        hdrs.CONTENT_DISPOSITION: content_disposition(filename, upload.id),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store" if not upload.completed else "private, max-age=0",
    }
    if segments is not None and len(segments) == 1:
        return web.FileResponse(segments[0], headers=headers)
    # A concatenated upload's segments, or an object store's bytes, streamed with Range.
    return await _serve_ranges(request, upload.offset, headers, _stored(uploads, upload))


_Source = Callable[[int, int], AsyncIterator[bytes]]


def _stored(uploads: Uploads, upload: Upload) -> _Source:
    if not upload.completed:
        raise ProtocolError(
            f"upload {upload.id} can be read from this server's storage once it is complete", 409
        )

    def source(start: int, stop: int) -> AsyncIterator[bytes]:
        return uploads.read(upload, start, stop)

    return source


async def _serve_ranges(
    request: web.Request, total: int, headers: dict[str, str], source: _Source
) -> web.StreamResponse:
    """A file read from `source` (segments, or an object store), with one Range supported."""
    try:
        wanted = request.http_range
    except ValueError:
        wanted = slice(None, None)
    start, stop = wanted.start, wanted.stop
    partial = start is not None or stop is not None
    if start is not None and start < 0:  # suffix range: the last -start bytes
        start, stop = max(0, total + start), total
    start = start or 0
    stop = total if stop is None else min(stop, total)
    if partial and start >= total:
        return web.Response(status=416, headers={hdrs.CONTENT_RANGE: f"bytes */{total}"})
    response = web.StreamResponse(status=206 if partial else 200, headers=headers)
    response.headers[hdrs.ACCEPT_RANGES] = "bytes"
    response.content_length = stop - start
    if partial:
        response.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{total}"
    await response.prepare(request)
    async for data in source(start, stop):
        await response.write(data)
    await response.write_eof()
    return response
