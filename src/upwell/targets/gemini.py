"""The Gemini Files API over Google's resumable upload protocol, plus files get/list/delete.

Headers and the File resource are built and read by `protocols.google_resumable` (shared with
the emulator); this module does the I/O. The API key travels only in the `x-goog-api-key`
header of API calls. The upload URL answered by `start` is itself a credential (chunk requests
carry no key): it is kept in `state()` so a later process can resume, and never appears in a
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ..config import format_size
from ..engine.planner import Part, Plan
from ..engine.retry import Sleep
from ..errors import ConfigError, IntegrityError, ProtocolError, TargetError, UploadGone
from ..protocols import google_resumable as gr
from ..protocols.http import RETRYABLE_STATUSES, provider_error
from .base import Body, FileService, RemoteFile, RemoteUpload, SourceInfo, Target
from .capabilities import Capabilities
from .http import body_payload, request

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
_VERSION = re.compile(r"^v[0-9]+[a-z0-9]*$")


@dataclass
class _ProjectUsage:
    """What one process knows of a project's stored bytes (see GeminiTarget.check_quota)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loop: asyncio.AbstractEventLoop | None = None  # the loop `lock` belongs to
    listed: bool = False  # a listing was tried (at most once per process)
    known: bool = False  # and it worked
    used: int = 0


_PROJECT_USAGE: dict[tuple[str, str, bytes], _ProjectUsage] = {}
log = logging.getLogger("upwell")


class GeminiTarget(Target, FileService):
    """The Gemini Files API (or anything speaking it, such as `upwell emulate gemini`).

    Offsets are sequential in this protocol, so one file goes as one part; chunks are
    multiples of `granularity` (the service answers 8 MiB); files over `max_size` are refused
    before the first byte. `finish()` waits, with backoff, up to `poll_timeout` seconds for the
    file to leave `PROCESSING`.
    """

    kind = "gemini"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        *,
        poll_timeout: float = 600.0,
        poll_interval: float = 0.1,
        max_poll_interval: float = 5.0,
        max_size: int = gr.MAX_FILE_SIZE,
        project_quota: int | None = gr.PROJECT_QUOTA,
        granularity: int = gr.DEFAULT_GRANULARITY,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ConfigError(
                "the Gemini target needs an API key: pass api_key= or set GEMINI_API_KEY"
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"Gemini base URL {base_url!r} is not an http(s) URL "
                "(e.g. https://generativelanguage.googleapis.com)"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError("the Gemini base URL must not carry a query, fragment or user")
        version = api_version.strip().strip("/")
        if not _VERSION.match(version):
            raise ConfigError(f"Gemini API version {api_version!r} is not like v1 or v1beta")
        if granularity < 1:
            raise ConfigError("granularity must be positive")
        self._api_key = api_key.strip()
        self.base_url = base_url.rstrip("/")
        self.api_version = version
        self.poll_timeout = poll_timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.max_size = max_size
        self.project_quota = project_quota
        self.granularity = granularity
        self._sleep = sleep
        self._clock = clock
        self._caps: Capabilities | None = None

    def __repr__(self) -> str:
        return f"GeminiTarget({self.base_url!r}, api_version={self.api_version!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/upload/{self.api_version}/files"

    def api_url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path}"

    def api_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {gr.API_KEY_HEADER: self._api_key, **(extra or {})}

    def learn_granularity(self, granularity: int) -> None:
        """The service asked for another granularity: plan later uploads with it."""
        self.granularity = granularity
        self._caps = None

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        if self._caps is None:
            self._caps = Capabilities(
                parallel_parts=False,
                append=True,
                resume=True,
                compression=(),
                checksum_algorithms=(),
                max_size=self.max_size,
                granularity=self.granularity,
            )
        return self._caps

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> GeminiUpload:
        return GeminiUpload(self, http, source, plan, state)

    # -- errors -------------------------------------------------------------------------
    def api_error(
        self, status: int, headers: Any, what: str, text: str, *, retryable: bool | None = None
    ) -> TargetError:
        """A TargetError for an error answer: Google's message, and a clear word on the key."""
        err = gr.parse_error(text)
        return provider_error(
            status,
            headers,
            what,
            err.message or (err.status or ""),
            label=f"HTTP {status}" + (f" {err.status}" if err.status else ""),
            refused_key=("the Gemini API", "GEMINI_API_KEY")
            if gr.is_key_error(status, err)
            else None,
            retryable=retryable,
        )

    # -- files: get, list, delete -------------------------------------------------------
    async def get_gemini_file(self, http: aiohttp.ClientSession, name: str) -> gr.GeminiFile:
        """The File resource `name` (`files/<id>`, `<id>` or its URI)."""
        name = _file_name(name)
        what = f"GET {name}"
        url = self.api_url(quote(name, safe="/"))
        async with request(http, "GET", url, what, headers=self.api_headers()) as r:
            text = await r.text()
            if r.status != 200:
                raise self.api_error(r.status, r.headers, what, text)
        return _parse_file(text, what)

    async def find_file(self, http: aiohttp.ClientSession, name: str) -> RemoteFile | None:
        """The file `name` as a RemoteFile, or None when the service no longer has it (deleted,
        or expired after 48 h): lets a completed session check its result still stands."""
        try:
            return await self.get_file(http, name)
        except TargetError as exc:
            if exc.status in (403, 404):
                return None
            raise

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        return await self.find_file(http, file.name) is not None

    async def get_file(self, http: aiohttp.ClientSession, name: str) -> RemoteFile:
        return remote_file(await self.get_gemini_file(http, name))

    async def list_page(
        self, http: aiohttp.ClientSession, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[gr.GeminiFile], str | None]:
        """One page of the project's files and the next page's token."""
        params = {"pageSize": str(page_size)}
        if page_token:
            params["pageToken"] = page_token
        what = "GET files (list)"
        async with request(
            http, "GET", self.api_url("files"), what, headers=self.api_headers(), params=params
        ) as r:
            text = await r.text()
            if r.status != 200:
                raise self.api_error(r.status, r.headers, what, text)
        try:
            return gr.parse_file_list(json.loads(text or "{}"))
        except (ValueError, ProtocolError) as exc:
            raise TargetError(f"{what}: unreadable answer ({exc})", retryable=True) from None

    async def iter_gemini_files(
        self, http: aiohttp.ClientSession, page_size: int = 100
    ) -> AsyncIterator[gr.GeminiFile]:
        """Every File resource of the project, page after page."""
        token: str | None = None
        while True:
            files, token = await self.list_page(http, page_size, token)
            for f in files:
                yield f
            if not token:
                return

    async def check_quota(self, http: aiohttp.ClientSession, size: int) -> None:
        """Refuse, before the first byte, a file the project has no room for.

        The project's files are listed once per process (per service and key): listing a
        big project takes many round trips, so later uploads count on what was listed plus
        what this process has started since. A listing that fails is logged and the upload
        goes on (the service enforces its quota anyway).
        """
        if self.project_quota is None:
            return
        key = (self.base_url, self.api_version, hashlib.sha256(self._api_key.encode()).digest())
        usage = _PROJECT_USAGE.get(key)
        if usage is None:
            usage = _ProjectUsage()
            _PROJECT_USAGE[key] = usage
        loop = asyncio.get_running_loop()
        if usage.loop is not loop:
            usage.lock, usage.loop = asyncio.Lock(), loop
        async with usage.lock:
            if not usage.listed:
                usage.listed = True
                try:
                    usage.used = 0
                    async for f in self.iter_gemini_files(http):
                        usage.used += f.size
                    usage.known = True
                except TargetError as exc:
                    log.warning("could not list the project's files to check its quota: %s", exc)
            if not usage.known:
                return
            if usage.used + size > self.project_quota:
                raise TargetError(
                    f"the project already stores {format_size(usage.used)} of its "
                    f"{format_size(self.project_quota)}; this {format_size(size)} file does not "
                    "fit (files expire after 48 h, or remove some with `upwell files rm`)"
                )
            usage.used += size

    async def list_files(
        self, http: aiohttp.ClientSession, page_size: int = 100
    ) -> AsyncIterator[RemoteFile]:
        async for f in self.iter_gemini_files(http, page_size):
            yield remote_file(f)

    async def delete_file(self, http: aiohttp.ClientSession, name: str) -> None:
        name = _file_name(name)
        what = f"DELETE {name}"
        url = self.api_url(quote(name, safe="/"))
        async with request(http, "DELETE", url, what, headers=self.api_headers()) as r:
            if r.status not in (200, 204):
                raise self.api_error(r.status, r.headers, what, await r.text())


def remote_file(file: gr.GeminiFile) -> RemoteFile:
    """The RemoteFile for a File resource (what uploads return)."""
    return RemoteFile(
        uri=file.uri,
        name=file.name,
        size=file.size,
        sha256=file.sha256,
        extra={
            key: value
            for key, value in file.summary().items()
            if key not in ("name", "uri", "size", "sha256")
        },
    )


def _file_name(name: str) -> str:
    try:
        return gr.normalize_file_name(name)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None


def _parse_file(text: str, what: str) -> gr.GeminiFile:
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ProtocolError("not a JSON object")
        return gr.GeminiFile.from_json(doc)
    except (ValueError, ProtocolError) as exc:
        raise TargetError(f"{what}: unreadable File resource ({exc})", retryable=True) from None


class GeminiUpload(RemoteUpload):
    """One file's resumable upload: start, sequential chunks, finalize, wait until ACTIVE."""

    def __init__(
        self,
        target: GeminiTarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None,
    ) -> None:
        self._t = target
        self._http = http
        self._source = source
        self._plan = plan
        self._size = source.size
        self._upload_url: str | None = None
        self._granularity: int | None = None
        self._file: gr.GeminiFile | None = None
        # A state for another size is another file's upload: start over.
        if state and state.get("size") == source.size:
            self._upload_url = state.get("upload_url") or None
            self._granularity = state.get("granularity")
            if state.get("file"):
                self._file = gr.GeminiFile(name=str(state["file"]), state=gr.STATE_PROCESSING)

    # -- helpers --------------------------------------------------------------------------
    def _scrub(self, exc: TargetError) -> TargetError:
        """The same error with the upload URL (a credential) taken out of its message."""
        message = str(exc)
        url = self._upload_url
        if not url:
            return exc
        query = urlsplit(url).query
        clean = message.replace(url, "<upload URL>")
        if query:
            clean = clean.replace(query, "<upload id>")
        if clean == message:
            return exc
        return TargetError(
            clean, status=exc.status, retryable=exc.retryable, retry_after=exc.retry_after
        )

    def _gone(self, status: int, what: str, detail: str) -> TargetError:
        return UploadGone(
            f"{what}: the service no longer knows this upload (HTTP {status}"
            + (f": {detail}" if detail else "")
            + "); the upload must start over",
            status=status,
            retryable=False,
        )

    async def _post_upload_url(
        self, what: str, headers: dict[str, str], data: Any = None
    ) -> tuple[int, Any, gr.UploadStatus | None, str]:
        assert self._upload_url is not None
        try:
            async with request(
                self._http, "POST", self._upload_url, what, headers=headers, data=data
            ) as r:
                text = await r.text()
                try:
                    status = gr.parse_status(r.headers)
                except ProtocolError as exc:
                    raise TargetError(f"{what}: {exc}", retryable=True) from None
                return r.status, r.headers, status, text
        except TargetError as exc:
            raise self._scrub(exc) from exc.__cause__

    def _take_final(self, text: str, what: str) -> None:
        self._file = _parse_file(text, what)

    # -- RemoteUpload ---------------------------------------------------------------------
    async def create(self) -> None:
        if self._upload_url is not None or self._file is not None:
            return
        await self._t.check_quota(self._http, self._size)
        what = "POST upload start"
        headers = self._t.api_headers(gr.start_headers(self._size, self._source.mime_type))
        body = gr.start_body(self._source.display_name)
        async with request(self._http, "POST", self._t.url, what, headers=headers, data=body) as r:
            text = await r.text()
            if r.status != 200:
                raise self._t.api_error(r.status, r.headers, what, text)
            try:
                started = gr.parse_start_response(r.headers)
            except ProtocolError as exc:
                raise TargetError(f"{what}: {exc}", retryable=True) from None
        self._upload_url = started.upload_url
        self._granularity = started.granularity
        g = started.granularity
        if g and len(self._plan.chunks) > 1 and self._plan.chunk_size % g:
            # The plan cannot be sent as it is: drop this upload, and plan the next with `g`.
            await self.abort()
            self._upload_url = None
            self._t.learn_granularity(g)
            raise TargetError(
                f"{what}: the service wants chunks in multiples of {format_size(g)}, but "
                f"{format_size(self._plan.chunk_size)} chunks were planned; try again, or set a "
                f"chunk size that is a multiple of {g} bytes",
                retryable=False,
            )

    async def part_offset(self, part: Part) -> int:
        if self._file is not None:
            return part.size
        if self._upload_url is None:
            return 0
        return await self._query()

    async def _query(self) -> int:
        what = "POST upload query"
        code, headers, status, text = await self._post_upload_url(what, gr.query_headers())
        if code == 200 and status is not None:
            if status.final:
                self._take_final(text, what)
                return self._size
            if status.status == gr.CANCELLED:
                raise self._gone(410, what, "cancelled")
            if status.size_received is None:
                raise TargetError(f"{what}: the answer has no {gr.SIZE_RECEIVED}", retryable=True)
            return status.size_received
        if 400 <= code < 500 and code not in RETRYABLE_STATUSES:
            raise self._gone(code, what, gr.parse_error(text).message)
        raise self._t.api_error(code, headers, what, text)

    async def send(self, part: Part, body: Body) -> int:
        if self._upload_url is None:
            raise TargetError("the upload was not started", retryable=False)
        finalize = body.offset + body.size == self._size
        what = f"POST chunk at offset {body.offset}" + (" (finalize)" if finalize else "")
        headers = gr.chunk_headers(body.offset, body.size, finalize)
        data = body_payload(body, "application/octet-stream")
        code, rheaders, status, text = await self._post_upload_url(what, headers, data)
        if code == 200 and status is not None:
            if status.final:
                self._take_final(text, what)
                return self._size
            if status.status == gr.ACTIVE:
                if status.size_received is not None:
                    return status.size_received
                return body.offset + body.size
        if status is not None and status.status == gr.CANCELLED:
            raise self._gone(410, what, "cancelled")
        if code == 404:
            raise self._gone(code, what, gr.parse_error(text).message)
        if 400 <= code < 500 and code not in RETRYABLE_STATUSES:
            # A refused chunk may only mean our offset is stale: a cut request the service
            # finished storing after we asked. If it holds more or less than we thought, go
            # on from there; if not, the refusal stands.
            received = (
                status.size_received
                if status is not None and status.size_received is not None
                else await self._query()
            )
            if self._file is not None:
                return self._size  # the query found the upload final: it is all there
            if received != body.offset:
                return received
        raise self._t.api_error(code, rheaders, what, text)

    async def _finalize_empty(self) -> None:
        """Finalize with no bytes: a 0-byte file, or a final answer we never read."""
        if await self._query() < self._size or self._file is not None:
            return
        what = "POST upload finalize"
        headers = gr.chunk_headers(self._size, 0, True)
        code, rheaders, status, text = await self._post_upload_url(what, headers, b"")
        if code == 200 and status is not None and status.final:
            self._take_final(text, what)
            return
        raise self._t.api_error(code, rheaders, what, text)

    async def finish(self) -> RemoteFile:
        if self._file is None:
            await self._finalize_empty()
        if self._file is None:
            raise TargetError("the upload is not complete at the service", retryable=True)
        file = self._file
        deadline = self._t._clock() + self._t.poll_timeout
        delay = self._t.poll_interval
        first = True
        while file.state in (gr.STATE_PROCESSING, "STATE_UNSPECIFIED"):
            remaining = deadline - self._t._clock()
            if remaining <= 0:
                raise TargetError(
                    f"{file.name} arrived but is still {file.state} after "
                    f"{self._t.poll_timeout:.0f}s; check it later with 'upwell files get "
                    f"{file.name}'",
                    retryable=False,
                )
            if first:
                # Small files are often ACTIVE by the time the upload is answered: look at once.
                self.report(f"Gemini is processing {file.name}; waiting for it to be ACTIVE")
                first = False
            else:
                await self._t._sleep(min(delay, remaining))
                delay = min(delay * 2, self._t.max_poll_interval)
            file = await self._t.get_gemini_file(self._http, file.name)
            self._file = file
        if file.state == gr.STATE_FAILED:
            reason = (file.error or {}).get("message") or "no reason given"
            raise TargetError(f"Gemini could not process {file.name}: {reason}", retryable=False)
        if file.size != self._size:
            raise IntegrityError(
                f"{file.name}: the service stored {file.size} bytes, the file has {self._size}"
            )
        return remote_file(file)

    async def abort(self) -> None:
        if self._upload_url is None or self._file is not None:
            return
        # Best effort: unfinished uploads expire at the service anyway.
        with contextlib.suppress(TargetError):
            await self._post_upload_url("POST upload cancel", gr.cancel_headers())

    def state(self) -> dict[str, Any]:
        return {
            "upload_url": self._upload_url,
            "size": self._size,
            "granularity": self._granularity,
            "file": self._file.name if self._file is not None else None,
        }
