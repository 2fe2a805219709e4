"""A local emulator of OpenAI-compatible files APIs and OpenAI's Uploads API.

Files: `POST /files` (multipart `purpose` + `file`, streamed to disk), list (`limit`, `after`,
`order`, `purpose`; `has_more`/`last_id`), retrieve, delete, and `GET /files/{id}/content`:
the bytes, or for `file-extract` files Kimi's and GLM's `{"content": <text>}` (text-like files
only). Uploads: create (`bytes` ≤ 8 GB), parts (multipart field `data`, ≤ 64 MB each), complete
(ordered `part_ids`, total bytes and `md5` checked) and cancel, each Upload expiring an hour
after it was made on an injectable clock. Every route is served under `/v1` (OpenAI, Kimi)
and `/api/paas/v4` (GLM); errors come in OpenAI's JSON shape. Bytes go to disk in threads,
never held whole.

Faults (`FaultPlan`, shared with the Gemini emulator) count body requests (file creates and
parts): 5xx answers, connections cut mid-body, requests left hanging, slow answers;
`upload_lifetime` and the clock make uploads expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import string
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from ..protocols import openai_files as of
from ..protocols import openai_uploads as ou
from .gemini import FaultPlan, stall

log = logging.getLogger("upwell.emulators.openai")

PREFIXES = ("/v1", "/api/paas/v4")
MAX_LIST_LIMIT = 10_000
DEFAULT_LIST_LIMIT = 10_000
MAX_EXTRACT = 16 * of.MiB  # the most text the emulator extracts from one file
_ID_ALPHABET = string.ascii_letters + string.digits
_READ = 1 << 20

__all__ = ["FaultPlan", "OpenAIEmulator", "create_openai_app"]


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass
class _Upload:
    upload: ou.Upload
    mime_type: str
    parts: dict[str, int] = field(default_factory=dict)  # part id -> size
    md5: str | None = None  # what `complete` was given (and checked)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)


@dataclass
class EmulatorConfig:
    """How the emulator behaves; `api_key` None accepts any key (but still requires one)."""

    data_dir: Path
    api_key: str | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    max_file_size: int = 512 * of.MiB
    max_upload_size: int = ou.MAX_UPLOAD_SIZE
    max_part_size: int = ou.MAX_PART_SIZE
    upload_lifetime: int = ou.UPLOAD_LIFETIME
    now: Callable[[], float] = field(default=time.time)


class OpenAIEmulator:
    """The emulator's state: files and uploads, their bytes on disk."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.files: dict[str, of.OpenAIFile] = {}
        self.uploads: dict[str, _Upload] = {}
        self.part_requests = 0  # part bodies received in full
        self.closing = asyncio.Event()
        self.files_dir = config.data_dir / "files"
        self.uploads_dir = config.data_dir / "uploads"

    # -- disk ----------------------------------------------------------------------------
    def load(self) -> None:
        """Runs in a thread at startup: the files an earlier run left."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        for meta in self.files_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                f = of.OpenAIFile.from_json(json.loads(meta.read_text()))
                if self.file_path(f.id).exists():
                    self.files[f.id] = f

    def file_path(self, file_id: str) -> Path:
        """Where a file's bytes are."""
        return self.files_dir / f"{file_id}.bin"

    def part_path(self, upload_id: str, part_id: str) -> Path:
        return self.uploads_dir / upload_id / f"{part_id}.bin"

    async def save_file(self, f: of.OpenAIFile) -> None:
        self.files[f.id] = f

        def write() -> None:
            tmp = self.files_dir / f"{f.id}.json.tmp"
            tmp.write_text(json.dumps(f.to_json()))
            os.replace(tmp, self.files_dir / f"{f.id}.json")

        await asyncio.to_thread(write)

    async def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id, None)

        def remove() -> None:
            for p in (self.file_path(file_id), self.files_dir / f"{file_id}.json"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

        await asyncio.to_thread(remove)

    async def drop_parts(self, upload_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.uploads_dir / upload_id, True)

    def new_file(self, size: int, filename: str, purpose: str) -> of.OpenAIFile:
        return of.OpenAIFile(
            id=_new_id("file-"),
            bytes=size,
            created_at=int(self.config.now()),
            filename=filename,
            purpose=purpose,
            status="processed",
        )

    def live_upload(self, upload_id: str) -> _Upload | None:
        """The upload, with its status brought up to date (pending ones expire)."""
        up = self.uploads.get(upload_id)
        if up is None:
            return None
        u = up.upload
        if (
            u.status == ou.PENDING
            and u.expires_at is not None
            and self.config.now() >= u.expires_at
        ):
            up.upload = ou.Upload(
                u.id, ou.EXPIRED, u.bytes, u.expires_at, u.filename, u.purpose, u.created_at
            )
        return up


# -- HTTP ----------------------------------------------------------------------------------
EMULATOR: web.AppKey[OpenAIEmulator] = web.AppKey("openai_emulator", OpenAIEmulator)


def _json(
    doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(doc), content_type="application/json", headers=headers
    )


def _error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        text=of.error_body(message, type_, code, param),
        content_type="application/json",
        headers=headers,
    )


def _glm(request: web.Request) -> bool:
    return request.path.startswith("/api/paas/")


def _check_key(request: web.Request, emu: OpenAIEmulator) -> web.Response | None:
    """401s as the services answer them: OpenAI's shape, GLM's business codes on its path."""
    key = of.bearer_token(request.headers)
    expected = emu.config.api_key
    if key is not None and (expected is None or secrets.compare_digest(key, expected)):
        return None
    if _glm(request):
        code = "1001" if key is None else "1002"
        message = "Header中未收到Authorization参数" if key is None else "Authorization Token非法"
        return web.Response(
            status=401,
            text=json.dumps({"error": {"code": code, "message": message}}),
            content_type="application/json",
        )
    if key is None:
        return _error(401, "You didn't provide an API key.", code=None)
    masked = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
    return _error(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")


async def _slow(emu: OpenAIEmulator) -> None:
    if emu.faults.delay > 0:
        await asyncio.sleep(emu.faults.delay)


async def _drain(request: web.Request) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while await request.content.readany():
            pass


async def _authorized(request: web.Request) -> OpenAIEmulator | web.Response:
    emu = request.app[EMULATOR]
    await _slow(emu)
    denied = _check_key(request, emu)
    if denied is not None:
        await _drain(request)
        return denied
    return emu


class _Cut(Exception):
    """The emulated fault cut the connection."""


class _TooBig(Exception):
    pass


async def _store(
    part: BodyPartReader, path: Path, limit: int, cut_after: int | None, request: web.Request
) -> tuple[int, str]:
    """Stream a multipart file part to `path`; (bytes, md5 hex). `cut_after` bytes in, the
    connection is cut (a fault); more than `limit` bytes raise _TooBig."""
    fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    md5 = hashlib.md5()
    written = 0
    try:
        while True:
            data = await part.read_chunk(_READ)
            if not data:
                break
            if cut_after is not None and written + len(data) >= cut_after:
                data = data[: max(0, cut_after - written)]
                await asyncio.to_thread(os.write, fd, data)
                if request.transport is not None:
                    request.transport.abort()
                raise _Cut
            written += len(data)
            if written > limit:
                raise _TooBig
            await asyncio.to_thread(_write_and_hash, fd, data, md5)
    finally:
        await asyncio.to_thread(os.close, fd)
    return written, md5.hexdigest()


def _write_and_hash(fd: int, data: bytes, md5: Any) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    md5.update(data)


async def _fault(
    request: web.Request, emu: OpenAIEmulator
) -> tuple[web.Response | None, int | None]:
    """The fault for this body request: an answer to give now, or where to cut the body."""
    _, fault = emu.faults.next_chunk_request()
    if fault == "fail":
        await _drain(request)
        retry = emu.faults.retry_after
        return (
            _error(
                emu.faults.fail_status,
                "The server is overloaded (emulated fault).",
                type_="server_error",
                headers={"Retry-After": str(retry)} if retry is not None else None,
            ),
            None,
        )
    if fault == "drop":
        return None, emu.faults.drop_after or 0
    if fault == "stall":
        emu.faults.stalled.set()
        if not await stall(request, emu):
            return web.Response(status=499), None  # the client went away
    return None, None


async def _form(
    request: web.Request, file_field: str, path: Path, limit: int, cut_after: int | None
) -> tuple[dict[str, str], tuple[str, int, str] | None]:
    """Read a multipart form whose file part goes to `path`: the text fields, and the file's
    (filename, size, md5)."""
    fields: dict[str, str] = {}
    stored: tuple[str, int, str] | None = None
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart bodies are not accepted")
        if part.name == file_field:
            size, md5 = await _store(part, path, limit, cut_after, request)
            stored = (part.filename or "upload", size, md5)
        elif part.name:
            fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")[:1000]
        else:
            await part.release()
    return fields, stored


async def handle_create_file(request: web.Request) -> web.StreamResponse:
    """POST /files: multipart `purpose` and `file`."""
    emu = await _authorized(request)
    if isinstance(emu, web.Response):
        return emu
    if not request.content_type.startswith("multipart/form-data"):
        await _drain(request)
        return _error(400, "The request must be multipart/form-data.")
    answer, cut = await _fault(request, emu)
    if answer is not None:
        return answer
    tmp = emu.files_dir / f".incoming-{secrets.token_hex(8)}"
    try:
        try:
            fields, stored = await _form(request, of.FILE_FIELD, tmp, emu.config.max_file_size, cut)
        except _Cut:
            log.info("files.create: connection cut (emulated fault)")
            return web.Response(status=499)
        except _TooBig:
            await _drain(request)
            return _error(
                413,
                f"File is too large: the limit is {emu.config.max_file_size} bytes.",
                param="file",
            )
        except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
            return _error(400, f"The multipart body could not be read ({exc}).")
        purpose = fields.get(of.PURPOSE_FIELD, "").strip()
        if not purpose:
            return _error(400, "Missing required parameter: 'purpose'.", param="purpose")
        if stored is None:
            return _error(400, "Missing required parameter: 'file'.", param="file")
        filename, size, _ = stored
        f = emu.new_file(size, filename, purpose)
        await asyncio.to_thread(os.replace, tmp, emu.file_path(f.id))
        await emu.save_file(f)
        return _json(f.to_json())
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(tmp.unlink)


def _not_found(file_id: str) -> web.Response:
    return _error(404, f"No such File object: {file_id}", param="id")


async def handle_list_files(request: web.Request) -> web.StreamResponse:
    """GET /files: newest first by default; `limit`, `after`, `order`, `purpose`."""
    emu = await _authorized(request)
    if isinstance(emu, web.Response):
        return emu
    try:
        limit = int(request.query.get("limit", DEFAULT_LIST_LIMIT))
    except ValueError:
        return _error(400, "limit must be an integer.", param="limit")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        return _error(400, f"limit must be between 1 and {MAX_LIST_LIMIT}.", param="limit")
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        return _error(400, "order must be asc or desc.", param="order")
    purpose = request.query.get("purpose")
    files = [f for f in emu.files.values() if purpose is None or f.purpose == purpose]
    files.sort(key=lambda f: (f.created_at or 0, f.id), reverse=order == "desc")
    after = request.query.get("after")
    if after:
        ids = [f.id for f in files]
        if after not in ids:
            return _error(400, f"No such File object: {after}", param="after")
        files = files[ids.index(after) + 1 :]
    page = files[:limit]
    return _json(
        {
            "object": "list",
            "data": [f.to_json() for f in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(files) > limit,
        }
    )


async def _file(request: web.Request) -> tuple[OpenAIEmulator, of.OpenAIFile] | web.Response:
    emu = await _authorized(request)
    if isinstance(emu, web.Response):
        return emu
    file_id = request.match_info["file_id"]
    f = emu.files.get(file_id)
    if f is None:
        return _not_found(file_id)
    return emu, f


async def handle_get_file(request: web.Request) -> web.StreamResponse:
    found = await _file(request)
    if isinstance(found, web.Response):
        return found
    return _json(found[1].to_json())


async def handle_delete_file(request: web.Request) -> web.StreamResponse:
    found = await _file(request)
    if isinstance(found, web.Response):
        return found
    emu, f = found
    await emu.delete_file(f.id)
    return _json({"id": f.id, "object": "file", "deleted": True})


def _extract(path: Path) -> str | None:
    """The text of a text-like file (UTF-8, no NUL bytes), or None."""
    with path.open("rb") as fh:
        data = fh.read(MAX_EXTRACT + 1)
    if len(data) > MAX_EXTRACT or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def handle_file_content(request: web.Request) -> web.StreamResponse:
    """GET /files/{id}/content: extracted text for `file-extract` files, else the bytes."""
    found = await _file(request)
    if isinstance(found, web.Response):
        return found
    emu, f = found
    path = emu.file_path(f.id)
    if f.purpose == "file-extract":
        text = await asyncio.to_thread(_extract, path)
        if text is None:
            return _error(
                400, f"The emulator extracts text only from text-like files; {f.id} is not one."
            )
        return _json(of.extraction_doc(text, f.filename or "", "text/plain"))
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


# -- uploads -------------------------------------------------------------------------------
async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        doc = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, "The body is not valid JSON.")
    if not isinstance(doc, dict):
        return _error(400, "The body must be a JSON object.")
    return doc


async def handle_create_upload(request: web.Request) -> web.StreamResponse:
    """POST /uploads: bytes, filename, mime_type, purpose."""
    emu = await _authorized(request)
    if isinstance(emu, web.Response):
        return emu
    doc = await _json_body(request)
    if isinstance(doc, web.Response):
        return doc
    for name in ("bytes", "filename", "mime_type", "purpose"):
        if doc.get(name) in (None, ""):
            return _error(400, f"Missing required parameter: '{name}'.", param=name)
    size = doc["bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return _error(400, "bytes must be a non-negative integer.", param="bytes")
    if size > emu.config.max_upload_size:
        return _error(
            400,
            f"Upload is too large: at most {emu.config.max_upload_size} bytes.",
            param="bytes",
        )
    now = int(emu.config.now())
    u = ou.Upload(
        id=_new_id("upload_"),
        status=ou.PENDING,
        bytes=size,
        expires_at=now + emu.config.upload_lifetime,
        filename=str(doc["filename"]),
        purpose=str(doc["purpose"]),
        created_at=now,
    )
    emu.uploads[u.id] = _Upload(u, str(doc["mime_type"]))
    await asyncio.to_thread((emu.uploads_dir / u.id).mkdir, parents=True, exist_ok=True)
    return _json(u.to_json())


def _not_pending(up: _Upload) -> web.Response:
    u = up.upload
    return _error(400, f"Upload {u.id} is {u.status}; it takes no more parts.", param="upload_id")


async def _upload(request: web.Request) -> tuple[OpenAIEmulator, _Upload] | web.Response:
    emu = await _authorized(request)
    if isinstance(emu, web.Response):
        return emu
    upload_id = request.match_info["upload_id"]
    up = emu.live_upload(upload_id)
    if up is None:
        await _drain(request)
        return _error(404, f"No such Upload object: {upload_id}", param="upload_id")
    return emu, up


async def handle_add_part(request: web.Request) -> web.StreamResponse:
    """POST /uploads/{id}/parts: one part as the multipart field `data`."""
    found = await _upload(request)
    if isinstance(found, web.Response):
        return found
    emu, up = found
    if up.upload.status != ou.PENDING:
        await _drain(request)
        return _not_pending(up)
    if not request.content_type.startswith("multipart/form-data"):
        await _drain(request)
        return _error(400, "The request must be multipart/form-data.")
    answer, cut = await _fault(request, emu)
    if answer is not None:
        return answer
    part_id = _new_id("part_")
    path = emu.part_path(up.upload.id, part_id)
    try:
        _, stored = await _form(request, ou.PART_FIELD, path, emu.config.max_part_size, cut)
    except _Cut:
        log.info("uploads.parts: connection cut (emulated fault)")
        await asyncio.to_thread(path.unlink, True)
        return web.Response(status=499)
    except _TooBig:
        await asyncio.to_thread(path.unlink, True)
        await _drain(request)
        return _error(400, f"A part is at most {emu.config.max_part_size} bytes.", param="data")
    except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
        await asyncio.to_thread(path.unlink, True)
        return _error(400, f"The multipart body could not be read ({exc}).")
    if stored is None:
        return _error(400, "Missing required parameter: 'data'.", param="data")
    # The hour may have run out while the part was on its way.
    up = emu.live_upload(up.upload.id) or up
    if up.upload.status != ou.PENDING:
        await asyncio.to_thread(path.unlink, True)
        return _not_pending(up)
    up.parts[part_id] = stored[1]
    emu.part_requests += 1
    return _json(ou.part_object(part_id, up.upload.id, int(emu.config.now())))


def _assemble(emu: OpenAIEmulator, upload_id: str, part_ids: list[str], dest: Path) -> str:
    """Concatenate the parts into `dest` (in a thread); the md5 of the whole."""
    md5 = hashlib.md5()
    with dest.open("wb") as out:
        for part_id in part_ids:
            with emu.part_path(upload_id, part_id).open("rb") as src:
                while data := src.read(_READ):
                    md5.update(data)
                    out.write(data)
    return md5.hexdigest()


async def handle_complete(request: web.Request) -> web.StreamResponse:
    """POST /uploads/{id}/complete: ordered part_ids, optional md5."""
    found = await _upload(request)
    if isinstance(found, web.Response):
        return found
    emu, up = found
    doc = await _json_body(request)
    if isinstance(doc, web.Response):
        return doc
    async with up.lock:
        u = up.upload
        if u.status != ou.PENDING:
            return _not_pending(up)
        ids = doc.get("part_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return _error(400, "part_ids must be a list of part ids.", param="part_ids")
        unknown = [i for i in ids if i not in up.parts]
        if unknown or len(set(ids)) != len(ids):
            return _error(400, f"Unknown or repeated part ids: {unknown[:3]}.", param="part_ids")
        total = sum(up.parts[i] for i in ids)
        if total != u.bytes:
            return _error(
                400,
                f"The parts hold {total} bytes, but the upload was created for {u.bytes}.",
                param="part_ids",
            )
        tmp = emu.files_dir / f".assembling-{u.id}"
        digest = await asyncio.to_thread(_assemble, emu, u.id, ids, tmp)
        expected = doc.get("md5")
        if expected and str(expected).lower() != digest:
            await asyncio.to_thread(tmp.unlink, True)
            return _error(400, "The md5 of the parts does not match the md5 given.", param="md5")
        up.md5 = str(expected).lower() if expected else None
        f = emu.new_file(total, u.filename or "upload", u.purpose or "")
        await asyncio.to_thread(os.replace, tmp, emu.file_path(f.id))
        await emu.save_file(f)
        await emu.drop_parts(u.id)
        up.upload = ou.Upload(
            u.id, ou.COMPLETED, u.bytes, u.expires_at, u.filename, u.purpose, u.created_at, f
        )
    return _json(up.upload.to_json())


async def handle_cancel(request: web.Request) -> web.StreamResponse:
    """POST /uploads/{id}/cancel."""
    found = await _upload(request)
    if isinstance(found, web.Response):
        return found
    emu, up = found
    async with up.lock:
        u = up.upload
        if u.status == ou.COMPLETED:
            return _error(400, f"Upload {u.id} is already completed.", param="upload_id")
        up.upload = ou.Upload(
            u.id, ou.CANCELLED, u.bytes, u.expires_at, u.filename, u.purpose, u.created_at
        )
        await emu.drop_parts(u.id)
    return _json(up.upload.to_json())


async def handle_health(request: web.Request) -> web.StreamResponse:
    """GET /healthz (not part of the API: lets scripts wait for the emulator)."""
    return web.Response(text="ok")


def create_openai_app(
    data_dir: Path | str,
    *,
    api_key: str | None = None,
    faults: FaultPlan | None = None,
    max_file_size: int = 512 * of.MiB,
    max_upload_size: int = ou.MAX_UPLOAD_SIZE,
    max_part_size: int = ou.MAX_PART_SIZE,
    upload_lifetime: int = ou.UPLOAD_LIFETIME,
    now: Callable[[], float] | None = None,
) -> web.Application:
    """The emulator as an aiohttp app; bytes and records under `data_dir`."""
    config = EmulatorConfig(
        data_dir=Path(data_dir),
        api_key=api_key,
        faults=faults or FaultPlan(),
        max_file_size=max_file_size,
        max_upload_size=max_upload_size,
        max_part_size=max_part_size,
        upload_lifetime=upload_lifetime,
    )
    if now is not None:
        config.now = now
    emu = OpenAIEmulator(config)
    app = web.Application(client_max_size=1 << 20)  # JSON bodies; files are streamed
    app[EMULATOR] = emu

    async def load(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(emu.load)
        yield

    async def closing(app: web.Application) -> None:
        emu.closing.set()

    app.cleanup_ctx.append(load)
    app.on_shutdown.append(closing)
    for prefix in PREFIXES:
        app.router.add_post(f"{prefix}/files", handle_create_file)
        app.router.add_get(f"{prefix}/files", handle_list_files)
        app.router.add_get(f"{prefix}/files/{{file_id}}", handle_get_file)
        app.router.add_delete(f"{prefix}/files/{{file_id}}", handle_delete_file)
        app.router.add_get(f"{prefix}/files/{{file_id}}/content", handle_file_content)
        app.router.add_post(f"{prefix}/uploads", handle_create_upload)
        app.router.add_post(f"{prefix}/uploads/{{upload_id}}/parts", handle_add_part)
        app.router.add_post(f"{prefix}/uploads/{{upload_id}}/complete", handle_complete)
        app.router.add_post(f"{prefix}/uploads/{{upload_id}}/cancel", handle_cancel)
    app.router.add_get("/healthz", handle_health)
    return app
