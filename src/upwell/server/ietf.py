"""IETF resumable uploads over HTTP, beside tus at the same URLs and over the same uploads:
a request carrying `Upload-Draft-Interop-Version` (and no `Tus-Resumable`) is answered here.

Creation (POST, optionally with the first bytes: a 104 interim response carries the upload's
URL before they arrive), offset retrieval (HEAD), append (PATCH), cancellation (DELETE).
Header parsing is `upwell.protocols.ietf_resumable`, shared with the client.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web

from ..errors import ProtocolError
from ..protocols import ietf_resumable as ietf
from ..protocols import tus
from ..protocols.http import format_repr_digest
from .ids import is_upload_id
from .keys import SETTINGS, UPLOADS
from .state import Upload
from .tus import Handler, request_body, run_to_completion
from .uploads import Uploads
from .urls import upload_url


class _NoBody:
    """The empty body of a request that only ends an upload."""

    declared = 0

    async def read(self) -> bytes:
        return b""

    def stop(self) -> None:
        pass


def _version(request: web.Request) -> int:
    version = ietf.parse_version(request.headers.get(ietf.INTEROP_HEADER))
    assert version is not None  # dispatch sends only requests that carry one
    return version


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info.get("upload_id", "")
    if not is_upload_id(upload_id):
        raise ProtocolError("no such upload", 404)
    return upload_id


def _limit(request: web.Request) -> dict[str, str]:
    settings = request.app[SETTINGS]
    limit = ietf.format_limit(
        ietf.Limit(max_size=settings.max_size, expires=int(settings.expiry.total_seconds()))
    )
    return {"Upload-Limit": limit} if limit else {}


def _state_headers(request: web.Request, version: int, upload: Upload) -> dict[str, str]:
    headers = {
        ietf.INTEROP_HEADER: str(version),
        "Upload-Offset": str(upload.offset),
        **ietf.format_complete(version, upload.completed),
    }
    if upload.length is not None:
        headers["Upload-Length"] = str(upload.length)
    if version >= 8:
        headers.update(_limit(request))
    return headers


def _length_if_complete(request: web.Request, complete: bool, offset: int) -> int | None:
    """A request that ends the upload and says how long its body is fixes the upload's length
    before the bytes arrive, so a longer body is refused as it comes."""
    if complete and request.content_length is not None:
        return offset + request.content_length
    return None


async def _finish(uploads: Uploads, upload: Upload) -> Upload:
    """The request said Upload-Complete ?1: the bytes received so far are the whole upload."""
    if upload.completed:
        return upload
    if upload.length is not None:
        raise ProtocolError(
            f"the upload is complete at {upload.offset} bytes, not the {upload.length} "
            "Upload-Length announced",
            400,
        )
    return await uploads.append(
        upload.id, offset=upload.offset, length=upload.offset, body=_NoBody()
    )


def _send_resumption_supported(request: web.Request, version: int, location: str) -> None:
    """104 Upload Resumption Supported, written before the final answer (aiohttp has no API
    for interim responses); HTTP/1.1 clients must accept informational answers."""
    transport = request.transport
    if transport is None or request.version < HttpVersion11:
        return
    transport.write(
        (
            f"HTTP/1.1 {ietf.RESUMPTION_SUPPORTED} {ietf.RESUMPTION_REASON}\r\n"
            f"Location: {location}\r\n{ietf.INTEROP_HEADER}: {version}\r\n\r\n"
        ).encode("latin-1")
    )


async def create(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    settings = request.app[SETTINGS]
    uploads = request.app[UPLOADS]
    complete = ietf.parse_complete(request.headers, version)
    length = ietf.parse_length(request.headers.get("Upload-Length"))
    declared = _length_if_complete(request, complete, 0)
    if length is not None and declared is not None and length != declared:
        raise ProtocolError(f"Upload-Length {length} but the whole body is {declared} bytes", 400)
    metadata = request.headers.get("Upload-Metadata", "").strip()  # tus-js-client sends it
    tus.decode_metadata(metadata)
    upload = await uploads.create(
        length=length if length is not None else declared, metadata=metadata
    )
    location = upload_url(request, settings.base_path, upload.id, settings.trust_proxy)
    if request.body_exists:
        _send_resumption_supported(request, version, location)
        upload = await run_to_completion(
            request,
            uploads.append(upload.id, offset=0, length=None, body=request_body(request)),
        )
    if complete:
        upload = await _finish(uploads, upload)
    headers = {"Location": location, **_state_headers(request, version, upload)}
    return web.Response(status=201, headers=headers)


async def head(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    uploads = request.app[UPLOADS]
    upload = await uploads.settled(_upload_id(request))
    headers = {"Cache-Control": "no-store", **_state_headers(request, version, upload)}
    if upload.completed and "sha-256" in request.headers.get("Want-Repr-Digest", ""):
        digest = await uploads.sha256(upload.id)  # RFC 9530, as on the tus side
        if digest is not None:
            headers["Repr-Digest"] = format_repr_digest(digest)
    return web.Response(status=204, headers=headers)


async def append(request: web.Request) -> web.StreamResponse:
    version = _version(request)
    upload_id = _upload_id(request)
    uploads = request.app[UPLOADS]
    ietf.check_append_content_type(request.content_type, version)
    offset = ietf.parse_offset(request.headers.get("Upload-Offset"))
    complete = ietf.parse_complete(request.headers, version)
    current = await uploads.get(upload_id)
    if current.completed:
        if offset == current.offset and not request.body_exists:
            return web.Response(status=200, headers=_state_headers(request, version, current))
        raise ProtocolError(f"upload {upload_id} is already complete", 400)
    length = _length_if_complete(request, complete, offset) if current.length is None else None
    upload = await run_to_completion(
        request,
        uploads.append(upload_id, offset=offset, length=length, body=request_body(request)),
    )
    if complete:
        upload = await _finish(uploads, upload)
    headers = _state_headers(request, version, upload)
    return web.Response(status=200 if upload.completed else 204, headers=headers)


async def cancel(request: web.Request) -> web.StreamResponse:
    _version(request)
    await request.app[UPLOADS].terminate(_upload_id(request))
    return web.Response(status=204)


COLLECTION: dict[str, Handler] = {"POST": create}
RESOURCE: dict[str, Handler] = {"HEAD": head, "PATCH": append, "DELETE": cancel}
