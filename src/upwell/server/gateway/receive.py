"""The seed's endpoint: `POST /upload`, a multipart form in, NDJSON progress out.

Fields: `file` (required), and before it optionally `display_name`, `session_id` and
`forward` (comma-separated names of configured `--forward` targets; `none` for none; default
all). The file part is streamed into storage as a tus upload of deferred length, so every
bound of the tus server holds; progress lines follow the receive and then each forward, and
the last line says `"stage": "complete"` (or `"failed"`). A body cut off, or over the size
limit, leaves nothing recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import BodyPartReader, web

from ...errors import ProtocolError
from ...protocols import tus
from ..keys import SETTINGS, UPLOADS
from ..state import Upload
from ..tus import run_to_completion
from ..uploads import BodyInterrupted
from .events import Subscription
from .keys import GATEWAY
from .limits import guard_body, quota_cap
from .records import absolute, record_json
from .routes import origin_of, owner_of

PART_READ = 4 * 1024 * 1024  # bytes asked of the multipart reader at a time
MAX_FIELD = 4096  # longest text field
FORM_OVERHEAD = 64 * 1024  # boundaries and part headers a form adds to the file's size
_DONE = frozenset({"stored", "forwarded", "failed"})


class PartBody:
    """The `file` part as an upload Body; a broken connection is BodyInterrupted."""

    def __init__(self, part: BodyPartReader, request: web.Request) -> None:
        self._part = part
        self._content = request.content

    @property
    def declared(self) -> int | None:
        return None

    async def read(self) -> bytes:
        try:
            return bytes(await self._part.read_chunk(PART_READ))
        except BodyInterrupted:
            raise
        except Exception as exc:  # connection lost, a malformed form
            raise BodyInterrupted(str(exc) or type(exc).__name__) from exc

    def stop(self) -> None:
        self._content.set_exception(BodyInterrupted("the upload was stopped"))


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


async def _field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(1024):
        data += chunk
        if len(data) > MAX_FIELD:
            raise ProtocolError(f"form field {part.name!r} is longer than {MAX_FIELD} bytes", 400)
    return data.decode("utf-8", "replace").strip()


class _Answer:
    """The NDJSON response, started only when the first line is ready, so that a refusal
    before it (413, 400) is still a plain status."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        self._lock = asyncio.Lock()

    @property
    def started(self) -> bool:
        return self.response.prepared

    async def write(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if not self.response.prepared:
                await self.response.prepare(self._request)
            await self.response.write(_line(data))


async def _pump(subscription: Subscription, answer: _Answer, finished: asyncio.Event) -> None:
    """Write progress events as lines until the record says the upload is settled."""
    while True:
        event = await subscription.next(3600.0)
        if event is None:
            continue
        if event.kind == "progress":
            await answer.write(event.data)
        elif finished.is_set() and event.data.get("status") in _DONE:
            return


async def post_upload(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    uploads = request.app[UPLOADS]
    gateway = request.app[GATEWAY]
    if request.content_type != "multipart/form-data":
        raise ProtocolError(
            "POST /upload takes a multipart/form-data body with a 'file' field", 415
        )
    declared = request.content_length
    if (
        settings.max_size is not None
        and declared is not None
        and declared > settings.max_size + FORM_OVERHEAD
    ):
        raise ProtocolError(
            f"a body of {declared} bytes is larger than this server's {settings.max_size}"
            " byte limit",
            413,
        )
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            raise ProtocolError("the form has no 'file' field", 400)
        if not isinstance(part, BodyPartReader):
            raise ProtocolError("nested multipart forms are not accepted", 400)
        if part.name == "file":
            break
        if part.name:
            fields[part.name] = await _field(part)
    forward = _forward_names(fields.get("forward"), gateway)
    cap = await quota_cap(request)
    metadata = _metadata(part, fields)
    upload = await uploads.create(length=None, metadata=metadata)
    answer = _Answer(request)
    finished = asyncio.Event()
    try:
        async with gateway.bus.subscribe(upload.owner, upload.id) as subscription:
            pump = asyncio.create_task(_pump(subscription, answer, finished))
            try:
                body = guard_body(PartBody(part, request), settings)
                await run_to_completion(
                    request, uploads.append(upload.id, offset=0, length=None, body=body, limit=cap)
                )
                while await reader.next() is not None:  # fields after the file are ignored
                    pass
                gateway.choose_forwards(upload.id, forward)
                finished.set()
                upload = await uploads.complete_deferred(upload.id)
                await pump
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                    await pump
    except BaseException as exc:
        # Nothing half-recorded: the client never learnt this upload's URL.
        with contextlib.suppress(ProtocolError):
            await asyncio.shield(uploads.terminate(upload.id))
        if isinstance(exc, ProtocolError | BodyInterrupted) and answer.started:
            with contextlib.suppress(ConnectionResetError):
                await answer.write(_failed(upload, str(exc)))
                await answer.response.write_eof()
            return answer.response
        if isinstance(exc, BodyInterrupted):
            raise ProtocolError(f"the body ended early ({exc}); nothing was stored", 400) from None
        raise
    await answer.write(await _complete(request, upload))
    await answer.response.write_eof()
    return answer.response


def _forward_names(value: str | None, gateway: Any) -> list[str]:
    configured = list(gateway.forwarder.targets) if gateway.forwarder is not None else []
    if value is None or value.strip() == "":
        return configured
    if value.strip().lower() == "none":
        return []
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ProtocolError(
            f"forward target {unknown[0][:60]!r} is not configured on this server"
            f" (configured: {', '.join(configured) or 'none'})",
            400,
        )
    return names


def _metadata(part: BodyPartReader, fields: dict[str, str]) -> str:
    values: dict[str, bytes] = {}
    name = fields.get("display_name") or part.filename
    if name:
        values["filename"] = name.encode()
    filetype = part.headers.get("Content-Type")
    if filetype and filetype != "application/octet-stream":
        values["filetype"] = filetype.encode()
    if fields.get("session_id"):
        values["session_id"] = fields["session_id"].encode()
    return tus.encode_metadata(values)


def _failed(upload: Upload, reason: str) -> dict[str, Any]:
    return {
        "percentage": 0.0,
        "stage": "failed",
        "message": "Upload failed; nothing was stored",
        "bytes_uploaded": 0,
        "bytes_total": 0,
        "chunk_index": 0,
        "total_chunks": 0,
        "task_id": upload.id,
        "upload_id": upload.id,
        "error": " ".join(reason.split())[:300],
    }


async def _complete(request: web.Request, upload: Upload) -> dict[str, Any]:
    gateway = request.app[GATEWAY]
    record = await gateway.state.record(upload.id)
    assert record is not None
    data = absolute(record_json(record, gateway.now(), gateway.base_path), origin_of(request))
    failed = [f for f in record.forwards if f.state == "failed"]
    line: dict[str, Any] = {
        "percentage": 100.0,
        "stage": "failed" if failed else "complete",
        "message": f"forward to {failed[0].target} failed" if failed else "Upload complete",
        "bytes_uploaded": upload.offset,
        "bytes_total": upload.offset,
        "chunk_index": 0,
        "total_chunks": 0,
        "task_id": upload.id,
        "upload_id": upload.id,
        "file_uri": data["url"],
        "url": data["url"],
        "sha256": data["sha256"],
        "owner": owner_of(request),
        "forwards": data["forwards"],
    }
    if failed:
        line["error"] = failed[0].error
    return line
