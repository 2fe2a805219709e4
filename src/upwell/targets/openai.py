"""OpenAI-compatible files APIs (OpenAI, Moonshot Kimi, Zhipu GLM) and OpenAI's Uploads API.

A file up to the provider's single-request limit goes as one streamed multipart
`POST {base}/files`: it cannot resume, so a failed request is sent again whole. Above that
limit (or on request, `multipart=True`) OpenAI's Uploads API takes it in parts of at most
64 MB, sent in parallel and completed with the ordered part ids and the file's md5; the part
ids are the state a later process resumes from while the upload lives (one hour). Requests
and answers are built and read by `protocols.openai_files` / `protocols.openai_uploads`.

The key travels only in the Authorization header and is scrubbed from any message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ..config import format_size
from ..engine.planner import Part, Plan
from ..errors import ConfigError, IntegrityError, ProtocolError, TargetError, UploadGone
from ..protocols import openai_files as of
from ..protocols import openai_uploads as ou
from ..protocols.http import provider_error
from .base import Body, FileService, RemoteFile, RemoteUpload, SourceInfo, Target
from .capabilities import Capabilities
from .http import body_payload, request

# Resume an Upload only if this much of its hour is left: enough to send the rest.
EXPIRY_MARGIN = 300.0
# The most `file_content` returns: text for a prompt, not a download.
MAX_CONTENT = 64 * 1024 * 1024


class OpenAITarget(Target, FileService):
    """An OpenAI-compatible files API, configured by a preset (`openai`, `kimi`, `glm`).

    `max_file_size` overrides the preset's single-request limit for `purpose`; `multipart`
    True sends every file through the Uploads API, False never, None above the limit (where
    the preset has it). `clock` gives Unix time (the Uploads API's expiry).
    """

    def __init__(
        self,
        api_key: str,
        preset: str | of.Preset = "openai",
        base_url: str | None = None,
        *,
        purpose: str | None = None,
        multipart: bool | None = None,
        max_file_size: int | None = None,
        max_upload_size: int = ou.MAX_UPLOAD_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        p = preset if isinstance(preset, of.Preset) else of.PRESETS.get(preset)
        if p is None:
            raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(of.PRESETS)}")
        self.preset = p
        self.kind = p.name
        if not api_key or not api_key.strip():
            raise ConfigError(f"the {p.name} target needs an API key: set {p.key_env}")
        base = (base_url or p.default_base).strip()
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{p.base_env} {base!r} is not an http(s) URL (e.g. {p.default_base})"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(f"{p.base_env} must not carry a query, fragment or user")
        purpose = (purpose or p.default_purpose).strip()
        if not purpose or any(c in purpose for c in '\r\n"\\'):
            raise ConfigError(f"purpose {purpose!r} is not usable")
        if multipart and not p.uploads_api:
            raise ConfigError(
                f"--multipart: {p.label} has no Uploads API; files go as one request "
                f"of at most {format_size(p.limit_for(purpose))}"
            )
        self._api_key = api_key.strip()
        self.base_url = base.rstrip("/")
        self.purpose = purpose
        self.multipart = multipart
        self.max_file_size = max_file_size if max_file_size is not None else p.limit_for(purpose)
        self.max_upload_size = max_upload_size
        self.clock = clock
        self._caps: Capabilities | None = None

    def __repr__(self) -> str:
        return f"OpenAITarget({self.kind!r}, {self.base_url!r}, purpose={self.purpose!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/files"

    @property
    def uses_uploads(self) -> bool:
        """Whether files above the single-request limit (or all, with multipart) go in parts."""
        return self.preset.uploads_api and self.multipart is not False

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        if self._caps is None:
            if self.uses_uploads:
                self._caps = Capabilities(
                    parallel_parts=True,
                    append=False,
                    resume=True,
                    max_size=self.max_upload_size,
                    max_chunk_size=ou.MAX_PART_SIZE,
                    whole_file_max=None if self.multipart else self.max_file_size,
                    file_digests=("md5",),
                )
            else:
                self._caps = Capabilities(
                    parallel_parts=False,
                    append=False,
                    resume=False,
                    max_size=self.max_file_size,
                    whole_file_max=self.max_file_size,
                )
        return self._caps

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> RemoteUpload:
        whole = (
            len(plan.parts) == 1
            and len(plan.parts[0].chunks) <= 1
            and source.size <= self.max_file_size
        )
        if self.uses_uploads and (self.multipart or not whole):
            return PartsUpload(self, http, source, plan, state)
        return SingleUpload(self, http, source, state, stale_upload=(state or {}).get("upload_id"))

    # -- requests and errors --------------------------------------------------------------
    def api_url(self, *path: str) -> str:
        return "/".join([self.base_url, *(quote(p, safe="") for p in path)])

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**of.auth_headers(self._api_key), **(extra or {})}

    def scrub(self, text: str) -> str:
        return text.replace(self._api_key, "<key>")

    def api_error(
        self, status: int, headers: Any, what: str, text: str, *, retryable: bool | None = None
    ) -> TargetError:
        """A TargetError for an error answer: the provider's message, a clear word on the key."""
        err = of.parse_error(text)
        return provider_error(
            status,
            headers,
            what,
            self.scrub(err.message or err.code or ""),
            refused_key=(self.preset.label, self.preset.key_env)
            if of.is_key_error(status, err)
            else None,
            retryable=retryable,
        )

    async def call(
        self, http: aiohttp.ClientSession, method: str, url: str, what: str, **kwargs: Any
    ) -> tuple[int, Any, str]:
        """One API request; (status, headers, text). Connection failures are retryable."""
        headers = self.headers(kwargs.pop("headers", None))
        try:
            async with request(http, method, url, what, headers=headers, **kwargs) as r:
                return r.status, r.headers, await r.text(errors="replace")
        except TargetError as exc:
            raise self._scrubbed(exc) from exc.__cause__

    def _scrubbed(self, exc: TargetError) -> TargetError:
        message = self.scrub(str(exc))
        if message == str(exc):
            return exc
        return TargetError(
            message, status=exc.status, retryable=exc.retryable, retry_after=exc.retry_after
        )

    def remote_file(self, f: of.OpenAIFile) -> RemoteFile:
        """The RemoteFile for a File object (what uploads and `upwell files` return)."""
        extra = {
            k: v
            for k, v in f.to_json().items()
            if k not in ("id", "object", "bytes") and v is not None
        }
        return RemoteFile(
            uri=f"{self.base_url}/files/{f.id}", name=f.id, size=f.bytes or 0, extra=extra
        )

    def _file(self, text: str, what: str) -> of.OpenAIFile:
        try:
            return of.parse_file(text)
        except ProtocolError as exc:
            raise TargetError(f"{what}: {exc}", retryable=True) from None

    # -- FileService ----------------------------------------------------------------------
    async def get_file(self, http: aiohttp.ClientSession, name: str) -> RemoteFile:
        file_id = _file_id(name)
        what = f"GET file {file_id}"
        status, headers, text = await self.call(http, "GET", self.api_url("files", file_id), what)
        if status != 200:
            raise self.api_error(status, headers, what, text)
        return self.remote_file(self._file(text, what))

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        try:
            await self.get_file(http, file.name)
        except TargetError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    async def list_files(
        self, http: aiohttp.ClientSession, page_size: int = 100
    ) -> AsyncIterator[RemoteFile]:
        after: str | None = None
        what = "GET files (list)"
        while True:
            params = of.list_params(self.preset, page_size, after)
            status, headers, text = await self.call(
                http, "GET", self.api_url("files"), what, params=params
            )
            if status != 200:
                raise self.api_error(status, headers, what, text)
            try:
                page = of.parse_file_list(text)
            except ProtocolError as exc:
                raise TargetError(f"{what}: {exc}", retryable=True) from None
            for f in page.files:
                yield self.remote_file(f)
            if not page.has_more or not page.last_id or page.last_id == after:
                return
            after = page.last_id

    async def delete_file(self, http: aiohttp.ClientSession, name: str) -> None:
        file_id = _file_id(name)
        what = f"DELETE file {file_id}"
        url = self.api_url("files", file_id)
        status, headers, text = await self.call(http, "DELETE", url, what)
        if status not in (200, 204):
            raise self.api_error(status, headers, what, text)

    async def file_content(self, http: aiohttp.ClientSession, name: str) -> str:
        file_id = _file_id(name)
        what = f"GET file {file_id} content"
        url = self.api_url("files", file_id, "content")
        try:
            async with request(http, "GET", url, what, headers=self.headers()) as r:
                if r.status != 200:
                    raise self.api_error(r.status, r.headers, what, await r.text(errors="replace"))
                data = bytearray()
                async for block in r.content.iter_chunked(1 << 20):
                    data += block
                    if len(data) > MAX_CONTENT:
                        break
        except TargetError as exc:
            raise self._scrubbed(exc) from exc.__cause__
        if len(data) > MAX_CONTENT:
            raise TargetError(
                f"{what}: the content is over {format_size(MAX_CONTENT)}; not shown as text",
                retryable=False,
            )
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise TargetError(f"{what}: the content is not text", retryable=False) from None
        return of.extracted_text(text) or ""


def _file_id(name: str) -> str:
    try:
        return of.normalize_file_id(name)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None


class SingleUpload(RemoteUpload):
    """The whole file as one multipart `POST /files`; sent again whole after a failure."""

    def __init__(
        self,
        target: OpenAITarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        state: dict[str, Any] | None,
        *,
        stale_upload: str | None = None,
    ) -> None:
        self._t = target
        self._http = http
        self._source = source
        self._file: of.OpenAIFile | None = None
        self._file_id: str | None = None
        self._stale_upload = stale_upload
        if state and state.get("size") == source.size and state.get("purpose") == target.purpose:
            self._file_id = state.get("file") or None

    def _frame(self) -> of.MultipartFrame:
        return of.multipart_frame(
            of.FILE_FIELD,
            self._source.display_name,
            self._source.mime_type,
            {of.PURPOSE_FIELD: self._t.purpose},
        )

    async def create(self) -> None:
        return None

    async def part_offset(self, part: Part) -> int:
        return part.size if self._file_id else 0

    async def _post(self, data: Any, frame: of.MultipartFrame) -> None:
        what = f"POST files ({format_size(self._source.size)})"
        status, headers, text = await self._t.call(
            self._http,
            "POST",
            self._t.api_url("files"),
            what,
            data=data,
            headers={"Content-Type": frame.content_type},
        )
        if status != 200:
            raise self._t.api_error(status, headers, what, text)
        self._file = self._t._file(text, what)
        self._file_id = self._file.id

    async def send(self, part: Part, body: Body) -> int:
        if body.offset != 0 or body.size != self._source.size:
            raise TargetError("a files API takes the whole file in one request", retryable=False)
        frame = self._frame()
        payload = body_payload(body, frame.content_type, frame.head, frame.tail)
        await self._post(payload, frame)
        return body.size

    async def finish(self) -> RemoteFile:
        if self._file is None and self._file_id is not None:
            what = f"GET file {self._file_id}"
            url = self._t.api_url("files", self._file_id)
            status, headers, text = await self._t.call(self._http, "GET", url, what)
            if status != 200:
                raise self._t.api_error(status, headers, what, text)
            self._file = self._t._file(text, what)
        if self._file is None and self._source.size == 0:
            frame = self._frame()
            await self._post(frame.head + frame.tail, frame)
        if self._file is None:
            raise TargetError("the file was not sent", retryable=False)
        return _checked(self._t, self._file, self._source.size)

    async def abort(self) -> None:
        # One request leaves nothing half-made; an Upload an earlier --multipart run left
        # (the state this one was given) is ended.
        if self._stale_upload:
            await _cancel(self._t, self._http, self._stale_upload)

    def state(self) -> dict[str, Any]:
        return {"file": self._file_id, "size": self._source.size, "purpose": self._t.purpose}


def _checked(target: OpenAITarget, f: of.OpenAIFile, size: int) -> RemoteFile:
    if f.bytes is not None and f.bytes != size:
        raise IntegrityError(f"{f.id}: the service stored {f.bytes} bytes, the file has {size}")
    if f.status == "error":
        detail = f.status_details or "no reason given"
        raise TargetError(f"{target.preset.label} could not process {f.id}: {detail}")
    remote = target.remote_file(f)
    if f.bytes is None:
        remote = RemoteFile(remote.uri, remote.name, size, remote.sha256, remote.extra)
    return remote


async def _cancel(target: OpenAITarget, http: aiohttp.ClientSession, upload_id: str) -> None:
    """Best effort: end an Upload (it would expire within the hour anyway)."""
    url = target.api_url("uploads", upload_id, "cancel")
    with contextlib.suppress(TargetError):
        await target.call(http, "POST", url, "POST upload cancel")


class PartsUpload(RemoteUpload):
    """One file through the Uploads API: create, parts in parallel, complete with the md5."""

    def __init__(
        self,
        target: OpenAITarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None,
    ) -> None:
        self._t = target
        self._http = http
        self._source = source
        self._plan = plan
        self._upload_id: str | None = None
        self._expires_at: int | None = None
        self._parts: dict[int, str] = {}
        self._md5: str | None = None
        self._file: of.OpenAIFile | None = None
        # A state for another size, part size or purpose is another upload: start over.
        if (
            state
            and state.get("upload_id")
            and state.get("size") == source.size
            and state.get("part_size") == plan.chunk_size
            and state.get("purpose") == target.purpose
        ):
            self._upload_id = str(state["upload_id"])
            expires = state.get("expires_at")
            self._expires_at = expires if isinstance(expires, int) else None
            self._parts = {int(k): str(v) for k, v in (state.get("part_ids") or {}).items()}

    def _gone(self, status: int, what: str, detail: str) -> UploadGone:
        return UploadGone(
            f"{what}: the service no longer takes this upload (HTTP {status}"
            + (f": {detail}" if detail else "")
            + "); it must start over",
            status=status,
            retryable=False,
        )

    def _error(self, status: int, headers: Any, what: str, text: str) -> TargetError:
        err = of.parse_error(text)
        message = err.message.lower()
        if status in (400, 404, 409) and any(
            w in message for w in ("expired", "cancelled", "canceled", "no such upload")
        ):
            return self._gone(status, what, self._t.scrub(err.message))
        return self._t.api_error(status, headers, what, text)

    def _upload(self, text: str, what: str) -> ou.Upload:
        try:
            return ou.parse_upload(text)
        except ProtocolError as exc:
            raise TargetError(f"{what}: {exc}", retryable=True) from None

    async def create(self) -> None:
        if self._upload_id is not None:
            if not ou.expired_by(self._expires_at, self._t.clock(), EXPIRY_MARGIN):
                return
            # The hour is (nearly) over: the parts sent are lost with it.
            self._upload_id, self._expires_at, self._parts = None, None, {}
        what = "POST uploads"
        body = ou.create_body(
            self._source.size, self._source.display_name, self._source.mime_type, self._t.purpose
        )
        status, headers, text = await self._t.call(
            self._http,
            "POST",
            self._t.api_url("uploads"),
            what,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            raise self._t.api_error(status, headers, what, text)
        up = self._upload(text, what)
        if up.status != ou.PENDING:
            raise TargetError(f"{what}: the new upload is {up.status}", retryable=True)
        self._upload_id = up.id
        self._expires_at = up.expires_at

    async def part_offset(self, part: Part) -> int:
        return part.size if part.index in self._parts else 0

    async def send(self, part: Part, body: Body) -> int:
        if self._upload_id is None:
            raise TargetError("the upload was not created", retryable=False)
        if body.offset != part.offset or body.size != part.size:
            raise TargetError("an Uploads API part is sent whole", retryable=False)
        what = f"POST part {part.index + 1} of {len(self._plan.parts)}"
        frame = of.multipart_frame(ou.PART_FIELD, "blob", "application/octet-stream")
        payload = body_payload(body, frame.content_type, frame.head, frame.tail)
        status, headers, text = await self._t.call(
            self._http,
            "POST",
            self._t.api_url("uploads", self._upload_id, "parts"),
            what,
            data=payload,
            headers={"Content-Type": frame.content_type},
        )
        if status != 200:
            raise self._error(status, headers, what, text)
        try:
            self._parts[part.index] = ou.parse_part(text)
        except ProtocolError as exc:
            raise TargetError(f"{what}: {exc}", retryable=True) from None
        return part.size

    def file_digests(self, digests: dict[str, bytes]) -> None:
        md5 = digests.get("md5")
        self._md5 = md5.hex() if md5 is not None else None

    async def finish(self) -> RemoteFile:
        if self._file is not None:
            return _checked(self._t, self._file, self._source.size)
        if self._upload_id is None:
            raise TargetError("the upload was not created", retryable=False)
        missing = [p.index for p in self._plan.parts if p.index not in self._parts]
        if missing:
            raise TargetError(f"parts {missing[:5]} were never sent", retryable=False)
        what = "POST upload complete"
        ids = [self._parts[p.index] for p in self._plan.parts]
        status, headers, text = await self._t.call(
            self._http,
            "POST",
            self._t.api_url("uploads", self._upload_id, "complete"),
            what,
            data=ou.complete_body(ids, self._md5),
            headers={"Content-Type": "application/json"},
        )
        if status != 200:
            err = of.parse_error(text)
            if status == 400 and "md5" in err.message.lower():
                raise IntegrityError(f"{what}: the service's md5 differs from the file's")
            raise self._error(status, headers, what, text)
        up = self._upload(text, what)
        if up.status != ou.COMPLETED or up.file is None:
            raise TargetError(f"{what}: the upload is {up.status}, with no file", retryable=False)
        self._file = up.file
        return _checked(self._t, up.file, self._source.size)

    async def abort(self) -> None:
        if self._upload_id is None or self._file is not None:
            return
        await _cancel(self._t, self._http, self._upload_id)

    def state(self) -> dict[str, Any]:
        return {
            "upload_id": self._upload_id,
            "expires_at": self._expires_at,
            "size": self._source.size,
            "part_size": self._plan.chunk_size,
            "purpose": self._t.purpose,
            "part_ids": {str(k): v for k, v in sorted(self._parts.items())},
            "file": self._file.id if self._file is not None else None,
        }
