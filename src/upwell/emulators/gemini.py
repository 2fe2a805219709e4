"""A local emulator of the Gemini Files API, faithful enough for the official SDK.

Resumable uploads (`start`, `upload`, `upload, finalize`, `query`, `cancel`) with the real
service's offset and granularity checks; `files.get`, `files.list` (pageSize/pageToken) and
`files.delete`; File resources as the service writes them (`sizeBytes` a string, `sha256Hash`
base64, `expirationTime` 48 h on, `PROCESSING` then `ACTIVE`); errors in Google's JSON shape.
Both `v1beta` and `v1` paths. Bytes stream to disk in threads, never held whole; what a cut
connection delivered is kept up to the last whole granule, as a resumable service keeps it.

`FaultPlan` injects deterministic faults for tests and offline work: 503s, connections dropped
mid-chunk, slow answers, files that fail processing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import string
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ..errors import ProtocolError
from ..protocols import google_resumable as gr

log = logging.getLogger("upwell.emulators.gemini")

VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
FILE_TTL = timedelta(hours=48)
UPLOAD_TTL = timedelta(days=7)
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_WRITE_BATCH = 1 << 20  # bytes gathered before one write to disk (in a thread)
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class FaultPlan:
    """Deterministic faults, counted over chunk requests (`upload` at an upload URL), 1-based.

    - `fail_every` N / `fail_requests`: those chunk requests are answered `fail_status` (503)
      after their body is read and dropped (nothing is stored).
    - `drop_after` K with `drop_every` N / `drop_requests`: those chunk requests have their
      connection cut after K body bytes (what arrived is kept to the last whole granule).
    - `stall_every` N / `stall_requests`: those chunk requests hang, unread, for
      `stall_seconds` or until their client goes away (a service that stopped answering);
      `stalled` is set when one starts, so a test knows when to kill its client.
    - `delay`: seconds every answer waits (slow service).
    - `fail_processing`: finished files end `FAILED` instead of `ACTIVE`.
    - `fail_list`: `files.list` answers 503 (a listing that does not work today).
    """

    fail_every: int = 0
    fail_requests: frozenset[int] = frozenset()
    fail_status: int = 503
    retry_after: int | None = None
    drop_after: int | None = None
    drop_every: int = 0
    drop_requests: frozenset[int] = frozenset()
    stall_every: int = 0
    stall_requests: frozenset[int] = frozenset()
    stall_seconds: float = 30.0
    delay: float = 0.0
    fail_processing: bool = False
    fail_list: bool = False
    # What happened, for tests and logs.
    chunk_requests: int = 0
    failed: int = 0
    dropped: int = 0
    stalls: int = 0
    stalled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def next_chunk_request(self) -> tuple[int, str | None]:
        """Count one chunk request; returns its number and its fault ("fail", "drop", None)."""
        self.chunk_requests += 1
        n = self.chunk_requests
        if n in self.fail_requests or (self.fail_every and n % self.fail_every == 0):
            self.failed += 1
            return n, "fail"
        if self.drop_after is not None and (
            n in self.drop_requests or (self.drop_every and n % self.drop_every == 0)
        ):
            self.dropped += 1
            return n, "drop"
        if n in self.stall_requests or (self.stall_every and n % self.stall_every == 0):
            self.stalls += 1
            return n, "stall"
        return n, None


@dataclass
class _Upload:
    id: str
    version: str
    file_id: str
    total: int
    mime_type: str
    display_name: str | None
    created: datetime
    received: int = 0  # committed bytes: what `query` answers
    final: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "file_id": self.file_id,
            "total": self.total,
            "mime_type": self.mime_type,
            "display_name": self.display_name,
            "created": self.created.isoformat(),
            "final": self.final,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], received: int) -> _Upload:
        return cls(
            id=doc["id"],
            version=doc["version"],
            file_id=doc["file_id"],
            total=int(doc["total"]),
            mime_type=doc["mime_type"],
            display_name=doc.get("display_name"),
            created=datetime.fromisoformat(doc["created"]),
            received=received,
            final=bool(doc.get("final")),
        )


@dataclass
class _File:
    resource: gr.GeminiFile
    version: str
    expires: datetime
    polls: int = 0


@dataclass
class EmulatorConfig:
    """How the emulator behaves; `api_key` None accepts any key (but still requires one)."""

    data_dir: Path
    api_key: str | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    granularity: int = gr.DEFAULT_GRANULARITY
    processing_polls: int = 1
    max_size: int = gr.MAX_FILE_SIZE
    file_ttl: timedelta = FILE_TTL
    upload_ttl: timedelta = UPLOAD_TTL
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class GeminiEmulator:
    """The emulator's state: uploads in flight and finished files, kept on disk."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.uploads: dict[str, _Upload] = {}
        self.files: dict[str, _File] = {}
        self.bytes_received = 0  # chunk body bytes stored, over all requests
        self.closing = asyncio.Event()  # set at shutdown: stalled requests end
        self._uploads_dir = config.data_dir / "uploads"
        self._files_dir = config.data_dir / "files"

    # -- disk ----------------------------------------------------------------------------
    def _load(self) -> None:
        """Runs in a thread at startup: what an earlier run left on disk."""
        self._uploads_dir.mkdir(parents=True, exist_ok=True)
        self._files_dir.mkdir(parents=True, exist_ok=True)
        for meta in self._files_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, ProtocolError):
                doc = json.loads(meta.read_text())
                f = _File(
                    gr.GeminiFile.from_json(doc["file"]),
                    doc["version"],
                    datetime.fromisoformat(doc["expires"]),
                    int(doc.get("polls", 0)),
                )
                self.files[f.resource.name.removeprefix("files/")] = f
        for meta in self._uploads_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                doc = json.loads(meta.read_text())
                part = self._part_path(doc["id"])
                received = part.stat().st_size if part.exists() else 0
                up = _Upload.from_json(doc, received)
                if up.final:
                    up.received = up.total
                self.uploads[up.id] = up

    def _part_path(self, upload_id: str) -> Path:
        return self._uploads_dir / f"{upload_id}.bin"

    def file_path(self, file_id: str) -> Path:
        """Where a finished file's bytes are."""
        return self._files_dir / f"{file_id}.bin"

    @staticmethod
    def _write_json(path: Path, doc: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    async def _save_upload(self, up: _Upload) -> None:
        await asyncio.to_thread(self._write_json, self._uploads_dir / f"{up.id}.json", up.to_json())

    async def _save_file(self, f: _File) -> None:
        doc = {
            "file": f.resource.to_json(),
            "version": f.version,
            "expires": f.expires.isoformat(),
            "polls": f.polls,
        }
        file_id = f.resource.name.removeprefix("files/")
        await asyncio.to_thread(self._write_json, self._files_dir / f"{file_id}.json", doc)

    def _remove_upload_files(self, upload_id: str) -> None:
        for p in (self._part_path(upload_id), self._uploads_dir / f"{upload_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _remove_file_files(self, file_id: str) -> None:
        for p in (self.file_path(file_id), self._files_dir / f"{file_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    # -- lookups -------------------------------------------------------------------------
    async def live_file(self, file_id: str) -> _File | None:
        f = self.files.get(file_id)
        if f is not None and f.expires <= self.config.now():
            del self.files[file_id]
            await asyncio.to_thread(self._remove_file_files, file_id)
            return None
        return f

    async def live_upload(self, upload_id: str) -> _Upload | None:
        up = self.uploads.get(upload_id)
        if up is not None and up.created + self.config.upload_ttl <= self.config.now():
            del self.uploads[upload_id]
            await asyncio.to_thread(self._remove_upload_files, upload_id)
            return None
        return up

    def _new_file_id(self) -> str:
        while True:
            file_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
            if file_id not in self.files and not any(
                u.file_id == file_id for u in self.uploads.values()
            ):
                return file_id

    # -- operations ----------------------------------------------------------------------
    async def start(self, version: str, req: gr.StartRequest) -> _Upload:
        if req.size > self.config.max_size:
            raise ProtocolError(
                f"File size {req.size} bytes exceeds the maximum of {self.config.max_size} bytes",
                400,
            )
        if req.name is not None:
            file_id = req.name.removeprefix("files/")
            if await self.live_file(file_id) is not None or any(
                u.file_id == file_id for u in self.uploads.values()
            ):
                raise ProtocolError(f"File {req.name} already exists.", 409)
        else:
            file_id = self._new_file_id()
        up = _Upload(
            id="ABgVH" + secrets.token_urlsafe(48),
            version=version,
            file_id=file_id,
            total=req.size,
            mime_type=req.mime_type,
            display_name=req.display_name,
            created=self.config.now(),
        )
        await asyncio.to_thread(self._part_path(up.id).touch)
        await self._save_upload(up)
        self.uploads[up.id] = up
        return up

    async def finalize(self, up: _Upload, origin: str) -> _File:
        """Hash the bytes (in a thread), move them into place and make the File resource."""
        part = self._part_path(up.id)
        dest = self.file_path(up.file_id)

        def hash_and_move() -> str:
            h = hashlib.sha256()
            with part.open("rb") as fh:
                while block := fh.read(_WRITE_BATCH):
                    h.update(block)
            os.replace(part, dest)
            return h.hexdigest()

        digest = await asyncio.to_thread(hash_and_move)
        now = self.config.now()
        polls = self.config.processing_polls
        state = gr.STATE_PROCESSING if polls > 0 else self._end_state()
        resource = gr.GeminiFile(
            name=f"files/{up.file_id}",
            uri=f"{origin}/{up.version}/files/{up.file_id}",
            size=up.total,
            mime_type=up.mime_type,
            display_name=up.display_name,
            state=state,
            sha256=digest,
            create_time=gr.format_time(now),
            update_time=gr.format_time(now),
            expiration_time=gr.format_time(now + self.config.file_ttl),
            source="UPLOADED",
            error=self._processing_error() if state == gr.STATE_FAILED else None,
        )
        f = _File(resource, up.version, now + self.config.file_ttl)
        self.files[up.file_id] = f
        await self._save_file(f)
        up.final = True
        up.received = up.total
        await self._save_upload(up)
        return f

    def _end_state(self) -> str:
        return gr.STATE_FAILED if self.faults.fail_processing else gr.STATE_ACTIVE

    @staticmethod
    def _processing_error() -> dict[str, Any]:
        return {"code": 400, "message": "The file could not be processed (emulated failure)."}

    async def poll(self, f: _File) -> _File:
        """A GET of a PROCESSING file: after `processing_polls` of them it is done."""
        if f.resource.state != gr.STATE_PROCESSING:
            return f
        f.polls += 1
        if f.polls >= self.config.processing_polls:
            state = self._end_state()
            f.resource = dataclasses.replace(
                f.resource,
                state=state,
                update_time=gr.format_time(self.config.now()),
                error=self._processing_error() if state == gr.STATE_FAILED else None,
            )
        await self._save_file(f)
        return f

    async def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id, None)
        await asyncio.to_thread(self._remove_file_files, file_id)

    async def cancel(self, up: _Upload) -> None:
        self.uploads.pop(up.id, None)
        await asyncio.to_thread(self._remove_upload_files, up.id)

    async def receive(
        self, request: web.Request, up: _Upload, offset: int, limit: int | None
    ) -> tuple[int, bool]:
        """Write the request body at `offset`, `limit` bytes at most; (written, complete).

        Incomplete (a cut connection or `limit`): the bytes are kept up to the last whole
        granule, so a resumed upload goes on at an offset the granularity allows.
        """
        part = self._part_path(up.id)
        fd = await asyncio.to_thread(os.open, part, os.O_WRONLY | os.O_CREAT)
        written = 0
        buf = bytearray()
        complete = True
        try:
            while True:
                try:
                    data = await request.content.readany()
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    complete = False
                    break
                if not data:
                    break
                if limit is not None and written + len(buf) + len(data) >= limit:
                    buf += data[: limit - written - len(buf)]
                    complete = False
                    break
                buf += data
                if len(buf) >= _WRITE_BATCH:
                    await asyncio.to_thread(os.pwrite, fd, buf, offset + written)
                    written += len(buf)
                    buf = bytearray()
            if buf:
                await asyncio.to_thread(os.pwrite, fd, buf, offset + written)
                written += len(buf)
            if request.content_length is not None and written < request.content_length:
                complete = False
            self.bytes_received += written
            keep = written if complete else written - written % self.config.granularity
            await asyncio.to_thread(os.ftruncate, fd, offset + keep)
        finally:
            await asyncio.to_thread(os.close, fd)
        return keep, complete


# -- HTTP ----------------------------------------------------------------------------------
EMULATOR: web.AppKey[GeminiEmulator] = web.AppKey("gemini_emulator", GeminiEmulator)


def _json(
    doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(doc, indent=2),
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


def _error(
    code: int, message: str, *, reason: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return _json(gr.error_body(code, message, reason), code, headers)


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _version(request: web.Request) -> str | None:
    version = request.match_info["version"]
    return version if version in VERSIONS else None


def _check_key(request: web.Request, expected: str | None) -> web.Response | None:
    """The service's answers for a missing (403) or wrong (400, API_KEY_INVALID) key."""
    key = request.headers.get(gr.API_KEY_HEADER) or request.query.get("key")
    if not key:
        return _error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if expected is not None and not secrets.compare_digest(key, expected):
        return _error(
            400, "API key not valid. Please pass a valid API key.", reason=gr.API_KEY_INVALID
        )
    return None


def _not_found_file(file_id: str) -> web.Response:
    # The service answers 403 for a file that does not exist, to not reveal which ids do.
    return _error(
        403, f"You do not have permission to access the File {file_id} or it may not exist."
    )


async def _slow(emu: GeminiEmulator) -> None:
    if emu.faults.delay > 0:
        await asyncio.sleep(emu.faults.delay)


class Stallable(Protocol):
    """What a stalled request needs of an emulator (the Gemini and OpenAI ones alike)."""

    faults: FaultPlan
    closing: asyncio.Event


async def stall(request: web.Request, emu: Stallable) -> bool:
    """Hang without reading for `stall_seconds`; False as soon as the client is gone or the
    emulator shuts down. (An unread request pauses reading, so a client's death shows only
    when the kernel resets the connection: the stall may outlive it, but holds no lock.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + emu.faults.stall_seconds
    while (left := deadline - loop.time()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing() or emu.closing.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(emu.closing.wait(), min(0.05, left))
    return True


async def _drain(request: web.Request) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while await request.content.readany():
            pass


async def handle_upload(request: web.Request) -> web.StreamResponse:
    """POST /upload/{version}/files: `start`, or a command at an upload URL (`upload_id`)."""
    emu = request.app[EMULATOR]
    await _slow(emu)
    version = _version(request)
    if version is None:
        return _error(404, f"API version {request.match_info['version']!r} not found.")
    upload_id = request.query.get("upload_id")
    if upload_id is not None:
        return await _upload_command(request, emu, upload_id)
    denied = _check_key(request, emu.config.api_key)
    if denied is not None:
        return denied
    body = await request.read()
    try:
        req = gr.parse_start_request(request.headers, body)
        up = await emu.start(version, req)
    except ProtocolError as exc:
        return _error(exc.status, str(exc))
    url = f"{_origin(request)}/upload/{version}/files?upload_id={up.id}&upload_protocol=resumable"
    headers = {
        **gr.status_headers(gr.ACTIVE, granularity=emu.config.granularity),
        gr.UPLOAD_URL: url,
        gr.CONTROL_URL: url,
        "X-GUploader-UploadID": up.id,
    }
    return web.Response(status=200, headers=headers)


def _final_response(f: _File) -> web.Response:
    return _json({"file": f.resource.to_json()}, headers=gr.status_headers(gr.FINAL))


async def _upload_command(
    request: web.Request, emu: GeminiEmulator, upload_id: str
) -> web.StreamResponse:
    up = await emu.live_upload(upload_id)
    if up is None:
        await _drain(request)
        return _error(404, "Failed to find the upload session; it may have expired.")
    try:
        commands = gr.parse_command(request.headers.get(gr.COMMAND))
    except ProtocolError as exc:
        await _drain(request)
        return _error(exc.status, str(exc))
    granularity = emu.config.granularity
    if gr.QUERY in commands:
        if up.final:
            f = await emu.live_file(up.file_id)
            if f is not None:
                return _final_response(f)
        return web.Response(headers=gr.status_headers(gr.ACTIVE, up.received, granularity))
    if gr.CANCEL in commands:
        if up.final:
            return _error(400, "The upload is already final.", headers=gr.status_headers(gr.FINAL))
        async with up.lock:
            await emu.cancel(up)
        return web.Response(headers=gr.status_headers(gr.CANCELLED))
    if gr.START in commands:
        await _drain(request)
        return _error(400, "The upload has already started.")
    return await _chunk(request, emu, up, finalize=gr.FINALIZE in commands)


async def _chunk(
    request: web.Request, emu: GeminiEmulator, up: _Upload, *, finalize: bool
) -> web.StreamResponse:
    granularity = emu.config.granularity
    _, fault = emu.faults.next_chunk_request()
    if fault == "fail":
        await _drain(request)
        retry = emu.faults.retry_after
        return _error(
            emu.faults.fail_status,
            "The service is currently unavailable (emulated fault).",
            headers={"Retry-After": str(retry)} if retry is not None else None,
        )
    if fault == "stall":
        emu.faults.stalled.set()
        if not await stall(request, emu):
            return web.Response(status=499)  # the client went away
    async with up.lock:
        if up.id not in emu.uploads:
            await _drain(request)
            return _error(404, "Failed to find the upload session; it may have expired.")
        active = gr.status_headers(gr.ACTIVE, up.received, granularity)
        try:
            offset = gr.parse_uint(request.headers.get(gr.OFFSET), gr.OFFSET)
        except ProtocolError as exc:
            await _drain(request)
            return _error(exc.status, str(exc), headers=active)
        if up.final:
            await _drain(request)
            f = await emu.live_file(up.file_id)
            if f is not None and finalize and offset == up.total and not request.content_length:
                return _final_response(f)
            return _error(400, "The upload is already final.", headers=gr.status_headers(gr.FINAL))
        declared = request.content_length

        def check(size: int) -> None:
            gr.check_chunk(
                offset=offset,
                size=size,
                received=up.received,
                total=up.total,
                granularity=granularity,
                finalize=finalize,
            )

        if declared is not None:
            try:
                check(declared)
            except ProtocolError as exc:
                await _drain(request)
                return _error(exc.status, str(exc), headers=active)
        elif offset != up.received:
            await _drain(request)
            return _error(
                400, "The upload offset does not match the bytes received.", headers=active
            )
        limit = emu.faults.drop_after if fault == "drop" else None
        written, complete = await emu.receive(request, up, offset, limit)
        if not complete:
            up.received = offset + written
            if fault == "drop" and request.transport is not None:
                request.transport.abort()
            log.info("upload %s…: connection cut after %d bytes", up.id[:8], written)
            return web.Response(status=499)
        if declared is None:
            try:
                check(written)
            except ProtocolError as exc:
                await asyncio.to_thread(os.truncate, emu._part_path(up.id), offset)
                return _error(exc.status, str(exc), headers=active)
        up.received = offset + written
        if not finalize:
            return web.Response(headers=gr.status_headers(gr.ACTIVE))
        f = await emu.finalize(up, _origin(request))
        return _final_response(f)


async def _api_request(request: web.Request) -> GeminiEmulator | web.Response:
    """The emulator for a /{version}/files… API call with a known version and an accepted
    key, or the error answer."""
    emu = request.app[EMULATOR]
    await _slow(emu)
    if _version(request) is None:
        return _error(404, "Not found.")
    denied = _check_key(request, emu.config.api_key)
    if denied is not None:
        return denied
    return emu


async def _file_request(request: web.Request) -> tuple[GeminiEmulator, str] | web.Response:
    """The emulator and a valid file id from /{version}/files/{id}, or the error answer."""
    emu = await _api_request(request)
    if isinstance(emu, web.Response):
        return emu
    file_id = request.match_info["file_id"]
    if not gr.FILE_ID.match(file_id):
        return _error(400, f"Invalid file name files/{file_id[:60]}.")
    return emu, file_id


async def handle_get(request: web.Request) -> web.StreamResponse:
    """GET /{version}/files/{id}"""
    found = await _file_request(request)
    if isinstance(found, web.Response):
        return found
    emu, file_id = found
    f = await emu.live_file(file_id)
    if f is None:
        return _not_found_file(file_id)
    f = await emu.poll(f)
    return _json(f.resource.to_json())


async def handle_delete(request: web.Request) -> web.StreamResponse:
    """DELETE /{version}/files/{id}"""
    found = await _file_request(request)
    if isinstance(found, web.Response):
        return found
    emu, file_id = found
    if await emu.live_file(file_id) is None:
        return _not_found_file(file_id)
    await emu.delete_file(file_id)
    return _json({})


def _page_token(index: int) -> str:
    return base64.urlsafe_b64encode(f"o:{index}".encode()).decode().rstrip("=")


def _page_index(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(token)
        return int(text[2:])
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("Invalid page token.", 400) from None


async def handle_list(request: web.Request) -> web.StreamResponse:
    """GET /{version}/files?pageSize=&pageToken= (newest first)"""
    emu = await _api_request(request)
    if isinstance(emu, web.Response):
        return emu
    if emu.faults.fail_list:
        return _error(503, "The service is currently unavailable.")
    try:
        raw = request.query.get("pageSize")
        size = DEFAULT_PAGE_SIZE if not raw else gr.parse_uint(raw, "pageSize")
        size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        token = request.query.get("pageToken")
        start = _page_index(token) if token else 0
    except ProtocolError as exc:
        return _error(400, str(exc))
    live = [f for fid in list(emu.files) if (f := await emu.live_file(fid)) is not None]
    live.sort(key=lambda f: (f.resource.create_time or "", f.resource.name), reverse=True)
    page = live[start : start + size]
    doc: dict[str, Any] = {}
    if page:
        doc["files"] = [f.resource.to_json() for f in page]
    if start + size < len(live):
        doc["nextPageToken"] = _page_token(start + size)
    return _json(doc)


async def handle_health(request: web.Request) -> web.StreamResponse:
    """GET /healthz (not part of the API: lets scripts wait for the emulator)."""
    return web.Response(text="ok")


def create_gemini_app(
    data_dir: Path | str,
    *,
    api_key: str | None = None,
    faults: FaultPlan | None = None,
    granularity: int = gr.DEFAULT_GRANULARITY,
    processing_polls: int = 1,
    max_size: int = gr.MAX_FILE_SIZE,
    now: Callable[[], datetime] | None = None,
) -> web.Application:
    """The emulator as an aiohttp app; bytes and metadata under `data_dir`."""
    if granularity < 1:
        raise ValueError("granularity must be positive")
    config = EmulatorConfig(
        data_dir=Path(data_dir),
        api_key=api_key,
        faults=faults or FaultPlan(),
        granularity=granularity,
        processing_polls=max(0, processing_polls),
        max_size=max_size,
    )
    if now is not None:
        config.now = now
    emu = GeminiEmulator(config)
    # The SDK's chunks are 8 MiB; the start body is small. Chunks are streamed, never read().
    app = web.Application(client_max_size=1 << 20)
    app[EMULATOR] = emu

    async def load(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(emu._load)
        yield

    async def closing(app: web.Application) -> None:
        emu.closing.set()

    app.cleanup_ctx.append(load)
    app.on_shutdown.append(closing)
    app.router.add_post("/upload/{version}/files", handle_upload)
    app.router.add_get("/{version}/files", handle_list)
    app.router.add_get("/{version}/files/{file_id}", handle_get)
    app.router.add_delete("/{version}/files/{file_id}", handle_delete)
    app.router.add_get("/healthz", handle_health)
    return app
