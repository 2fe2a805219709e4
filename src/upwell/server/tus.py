"""tus 1.0 over HTTP: parse the request's headers, call Uploads, format the answer.

Core protocol plus creation, creation-with-upload, creation-defer-length, expiration, checksum,
termination and concatenation. Header parsing is shared with the client
(`upwell.protocols.tus`); every failure is a ProtocolError that app.py turns into a one-line
plain-text answer with its status.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import StreamReader, web

from ..errors import ProtocolError
from ..protocols import ietf_resumable as ietf_protocol
from ..protocols import tus
from ..protocols.http import format_repr_digest
from .downloads import download
from .encoding import ACCEPTED, decoded_body
from .gateway.limits import guard_body
from .ids import is_upload_id
from .keys import SETTINGS, UPLOADS, WRITES
from .state import Upload
from .storage import Checksum
from .uploads import Body, BodyInterrupted
from .urls import upload_id_from_url, upload_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


class RequestBody:
    """An aiohttp request body read chunk by chunk, keeping what arrived if it is cut off."""

    def __init__(self, request: web.Request) -> None:
        self._content = request.content
        self._declared = request.content_length
        self._leftover: deque[bytes] | None = None
        self._reason = ""

    @property
    def declared(self) -> int | None:
        return self._declared

    async def read(self) -> bytes:
        if self._leftover is None:
            try:
                return await self._content.readany()
            except Exception as exc:  # connection lost, broken chunked coding, a takeover
                self._reason = str(exc) or type(exc).__name__
                self._leftover = _buffered(self._content)
        if self._leftover:
            return self._leftover.popleft()
        raise BodyInterrupted(self._reason)

    def stop(self) -> None:
        self._content.set_exception(BodyInterrupted("a newer PATCH took over this upload"))


def _buffered(content: StreamReader) -> deque[bytes]:
    """Bytes that reached the server but were not read when the body failed.

    aiohttp raises the failure before handing out what it buffered; those bytes did arrive,
    so the upload keeps them (private attributes, read defensively).
    """
    buffer = getattr(content, "_buffer", None)
    if not isinstance(buffer, deque) or not buffer:
        return deque()
    chunks = deque(bytes(chunk) for chunk in buffer)
    offset = getattr(content, "_buffer_offset", 0)
    if isinstance(offset, int) and offset:
        chunks[0] = chunks[0][offset:]
    buffer.clear()
    return chunks


async def run_to_completion(request: web.Request, work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, letting it finish even if the handler is cancelled.

    A client that disconnects mid-body may get its handler cancelled (aiohttp's
    handler_cancellation); the write must still store and commit the bytes that arrived.
    """
    task = asyncio.ensure_future(work)
    writes = request.app[WRITES]
    writes.add(task)
    task.add_done_callback(_forget_write(writes))
    return await asyncio.shield(task)


def _forget_write(writes: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the handler that awaited it may be gone

    return done


def request_body(request: web.Request) -> Body:
    """The PATCH/POST body as the bytes to append, decoded per its Content-Encoding."""
    guarded = guard_body(RequestBody(request), request.app[SETTINGS])
    return decoded_body(guarded, request.headers.get("Content-Encoding", ""))


def _checksum(request: web.Request) -> Checksum | None:
    header = request.headers.get("Upload-Checksum")
    if header is None:
        return None
    algorithm, digest = tus.parse_checksum(header)
    return Checksum(algorithm, digest)


def _check_offset_content_type(request: web.Request) -> None:
    if request.content_type != tus.OFFSET_CONTENT_TYPE:
        raise ProtocolError(f"Content-Type must be {tus.OFFSET_CONTENT_TYPE}", 415)


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info.get("upload_id", "")
    if not is_upload_id(upload_id):
        raise ProtocolError("no such upload", 404)
    return upload_id


def _expiry_headers(upload: Upload, headers: dict[str, str]) -> dict[str, str]:
    if not upload.completed and upload.expires is not None:
        headers["Upload-Expires"] = tus.format_expires(upload.expires)
    return headers


def server_headers(request: web.Request) -> dict[str, str]:
    """What a tus server says of itself (OPTIONS)."""
    settings = request.app[SETTINGS]
    headers = {
        "Tus-Version": tus.TUS_VERSION,
        "Tus-Extension": ",".join(tus.EXTENSIONS),
        "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
        # RFC 7694: the content codings this server decodes in request bodies.
        "Accept-Encoding": ",".join(ACCEPTED),
    }
    if settings.max_size is not None:
        headers["Tus-Max-Size"] = str(settings.max_size)
    headers.update(ietf_protocol.offer_headers())  # the IETF draft, spoken at the same URLs
    return headers


async def options(request: web.Request) -> web.StreamResponse:
    # CORS preflights are answered by the CORS middleware before they get here.
    return web.Response(status=204, headers=server_headers(request))


async def create(request: web.Request) -> web.StreamResponse:
    """POST: a new upload (creation, creation-with-upload, defer-length, concatenation)."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    settings = request.app[SETTINGS]
    uploads = request.app[UPLOADS]
    metadata = request.headers.get("Upload-Metadata", "").strip()
    tus.decode_metadata(metadata)
    concat = tus.parse_concat(request.headers.get("Upload-Concat"))
    has_length = "Upload-Length" in request.headers
    deferred = request.headers.get("Upload-Defer-Length")
    if deferred is not None and deferred.strip() != "1":
        raise ProtocolError("Upload-Defer-Length must be 1", 400)

    if concat is not None and concat.final:
        if has_length or deferred is not None:
            raise ProtocolError("a final concatenated upload takes no Upload-Length", 400)
        if request.body_exists:
            raise ProtocolError("a final concatenated upload takes no body", 400)
        parts = [upload_id_from_url(part, settings.base_path) for part in concat.parts]
        upload = await uploads.concatenate(parts=parts, metadata=metadata)
    else:
        if has_length and deferred is not None:
            raise ProtocolError("send Upload-Length or Upload-Defer-Length, not both", 400)
        length = (
            None
            if deferred is not None
            else tus.parse_uint(request.headers.get("Upload-Length"), "Upload-Length")
        )
        body = checksum = None
        if request.body_exists:
            _check_offset_content_type(request)
            checksum = _checksum(request)
            body = request_body(request)
        upload = await run_to_completion(
            request,
            uploads.create(
                length=length,
                metadata=metadata,
                partial=concat is not None,
                body=body,
                checksum=checksum,
            ),
        )
    headers = {
        "Location": upload_url(request, settings.base_path, upload.id, settings.trust_proxy),
        "Upload-Offset": str(upload.offset),
        **_known_digest(upload),
    }
    return web.Response(status=201, headers=_expiry_headers(upload, headers))


async def head(request: web.Request) -> web.StreamResponse:
    """HEAD: where the upload stands."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    settings = request.app[SETTINGS]
    uploads = request.app[UPLOADS]
    upload = await uploads.settled(_upload_id(request))
    headers = {"Cache-Control": "no-store"}
    if upload.concat == "final" and not upload.completed:
        # concatenation-unfinished: no offset until assembled; the length once it is known.
        length = await uploads.final_length(upload)
        if length is not None:
            headers["Upload-Length"] = str(length)
    else:
        headers["Upload-Offset"] = str(upload.offset)
        if upload.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(upload.length)
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    if upload.completed and (
        upload.sha256 is not None or "sha-256" in request.headers.get("Want-Repr-Digest", "")
    ):
        # RFC 9530: the stored bytes' SHA-256, read back from storage once and kept, so a
        # client can check the file as assembled, not just each request as it arrived.
        digest = await uploads.sha256(upload.id)
        if digest is not None:
            headers["Repr-Digest"] = format_repr_digest(digest)
    if upload.concat == "partial":
        headers["Upload-Concat"] = "partial"
    elif upload.concat == "final":
        headers["Upload-Concat"] = tus.format_concat_final(
            [upload_url(request, settings.base_path, p, settings.trust_proxy) for p in upload.parts]
        )
    return web.Response(status=200, headers=_expiry_headers(upload, headers))


async def patch(request: web.Request) -> web.StreamResponse:
    """PATCH: append the body at Upload-Offset."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    upload_id = _upload_id(request)
    _check_offset_content_type(request)
    offset = tus.parse_uint(request.headers.get("Upload-Offset"), "Upload-Offset")
    length_header = request.headers.get("Upload-Length")
    length = None if length_header is None else tus.parse_uint(length_header, "Upload-Length")
    checksum = _checksum(request)
    body = request_body(request)
    upload = await run_to_completion(
        request,
        request.app[UPLOADS].append(
            upload_id, offset=offset, length=length, body=body, checksum=checksum
        ),
    )
    headers = {"Upload-Offset": str(upload.offset), **_known_digest(upload)}
    return web.Response(status=204, headers=_expiry_headers(upload, headers))


def _known_digest(upload: Upload) -> dict[str, str]:
    """Repr-Digest of an upload its last request completed, when the server kept a running
    digest of it (RFC 9530 allows it unasked): the client checks it against its own."""
    if upload.completed and upload.sha256 is not None:
        return {"Repr-Digest": format_repr_digest(bytes.fromhex(upload.sha256))}
    return {}


async def delete(request: web.Request) -> web.StreamResponse:
    """DELETE: termination."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    await request.app[UPLOADS].terminate(_upload_id(request))
    return web.Response(status=204)


_COLLECTION: dict[str, Handler] = {"POST": create, "OPTIONS": options}
_RESOURCE: dict[str, Handler] = {
    "HEAD": head,
    "GET": download,
    "PATCH": patch,
    "DELETE": delete,
    "OPTIONS": options,
}


_METHOD = re.compile(r"^[A-Za-z]{1,20}$")


def _dispatch(handlers: dict[str, Handler], ietf_handlers: dict[str, Handler]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        # The IETF draft's requests name their interop version and carry no Tus-Resumable.
        if "Tus-Resumable" not in request.headers and ietf_protocol.parse_version(
            request.headers.get(ietf_protocol.INTEROP_HEADER)
        ):
            handlers_now = ietf_handlers
        else:
            handlers_now = handlers
        # tus: the override MUST be taken as the method, whatever the request's own method
        # (a browser or proxy may allow only GET and POST).
        override = request.headers.get("X-HTTP-Method-Override", "").strip()
        if override and not _METHOD.match(override):
            raise ProtocolError("X-HTTP-Method-Override must name an HTTP method", 400)
        method = override.upper() if override else request.method
        handler = handlers_now.get(method)
        if handler is None:
            raise web.HTTPMethodNotAllowed(
                method, list(handlers_now), text=f"method {method[:20]} is not allowed here"
            )
        return await handler(request)

    return handle


def add_routes(app: web.Application, base_path: str) -> None:
    """The tus endpoint at base_path and its uploads at base_path + id (IETF resumable
    uploads at the same URLs)."""
    from . import ietf  # it builds on this module's helpers

    collection = _dispatch(_COLLECTION, {**_COLLECTION, **ietf.COLLECTION})
    app.router.add_route("*", base_path, collection)
    app.router.add_route("*", base_path.rstrip("/"), collection)
    resource = _dispatch(_RESOURCE, {**_RESOURCE, **ietf.RESOURCE})
    app.router.add_route("*", base_path + "{upload_id}", resource)
