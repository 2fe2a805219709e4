"""IETF "Resumable Uploads for HTTP" client: create without a body, then append; HEAD after
any error; DELETE to cancel.

aiohttp's client hides 104 interim responses, so a creation that carried the first bytes
would learn the upload's URL only if it finished: upwell creates first (`Upload-Complete: ?0`)
and appends after. Headers are `protocols.ietf_resumable`, shared with the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import aiohttp

from ..engine.planner import Part, Plan
from ..errors import ProtocolError, TargetError, UploadGone
from ..protocols import ietf_resumable as ietf
from ..protocols import tus
from ..protocols.http import error_for_status, parse_repr_digest
from .base import Body, RemoteFile, RemoteUpload, SourceInfo, Target
from .capabilities import Capabilities
from .http import body_payload, request


class IetfTarget(Target):
    """A server speaking the IETF draft (upwell serve, or any at interop 5, 6 or 8)."""

    kind = "ietf"

    def __init__(self, endpoint: str, version: int | None = None) -> None:
        self._endpoint = endpoint
        self._version = version
        self._caps: Capabilities | None = None

    @property
    def url(self) -> str:
        return self._endpoint

    @property
    def version(self) -> int:
        return self._version or ietf.LATEST_VERSION

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        if self._caps is not None:
            return self._caps
        headers = {ietf.INTEROP_HEADER: str(self.version)}
        what = "OPTIONS (discovery)"
        async with request(http, "OPTIONS", self._endpoint, what, headers=headers) as r:
            if r.status >= 400 and r.status not in (404, 405):
                raise error_for_status(r.status, r.headers, what, await r.text())
            offered = ietf.offered_versions(r.headers) if r.status < 300 else ()
            limit = ietf.parse_limit(r.headers.get("Upload-Limit"))
        if self._version is None and offered:
            self._version = offered[0]  # the newest both sides speak
        self._caps = Capabilities(
            parallel_parts=False, append=True, resume=True, max_size=limit.max_size
        )
        return self._caps

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        what = "HEAD (finished upload)"
        headers = {ietf.INTEROP_HEADER: str(self.version)}
        async with request(http, "HEAD", file.uri, what, headers=headers) as r:
            if r.status in (404, 410):
                return False
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            return r.headers.get("Upload-Complete") == "?1"

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> IetfUpload:
        if self._caps is None:
            raise RuntimeError("open() the target before starting an upload")
        return IetfUpload(self, http, source, plan, state or {})


class IetfUpload(RemoteUpload):
    """One file as one resumable upload (the draft has no parallel parts)."""

    def __init__(
        self,
        target: IetfTarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any],
    ) -> None:
        self._t = target
        self._http = http
        self._source = source
        self._plan = plan
        self._url: str | None = state.get("url")
        self._version = int(state.get("version") or target.version)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {ietf.INTEROP_HEADER: str(self._version), **(extra or {})}

    def _read_offset(self, response: aiohttp.ClientResponse, what: str) -> int:
        try:
            return ietf.parse_offset(response.headers.get("Upload-Offset"))
        except ProtocolError as exc:
            raise TargetError(f"{what}: {exc}", retryable=True) from None

    async def create(self) -> None:
        if self._url is not None:
            return
        what = "POST (create upload)"
        headers = ietf.creation_headers(self._version, self._plan.file_size)
        # Not in the draft; upwell serve names the file by it, others ignore it.
        headers["Upload-Metadata"] = tus.encode_metadata(
            {"filename": self._source.name, "filetype": self._source.mime_type}
        )
        async with request(self._http, "POST", self._t.url, what, headers=headers) as r:
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what, await r.text())
            location = r.headers.get("Location")
            if not location:
                raise TargetError(f"{what}: the server answered {r.status} without a Location")
            self._url = urljoin(str(r.url), location)

    def _upload_url(self) -> str:
        if self._url is None:
            raise RuntimeError("create() the upload first")
        return self._url

    async def part_offset(self, part: Part) -> int:
        if self._url is None:
            return 0
        what = "HEAD (offset retrieval)"
        async with request(self._http, "HEAD", self._url, what, headers=self._headers()) as r:
            if r.status in (404, 410):
                raise UploadGone(
                    f"{what}: the server no longer has this upload (HTTP {r.status})",
                    status=r.status,
                )
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            return self._read_offset(r, what)

    async def send(self, part: Part, body: Body) -> int:
        complete = body.offset + body.size == self._plan.file_size
        what = f"PATCH (append at offset {body.offset})"
        headers = self._headers(ietf.append_headers(self._version, body.offset, complete))
        headers["Content-Length"] = str(body.size)
        content_type = headers.get("Content-Type", "application/octet-stream")
        data = body_payload(body, content_type)
        url = self._upload_url()
        async with request(self._http, "PATCH", url, what, headers=headers, data=data) as r:
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what, await r.text())
            if "Upload-Offset" not in r.headers:
                return body.offset + body.size
            return self._read_offset(r, what)

    async def finish(self) -> RemoteFile:
        url = self._upload_url()
        what = "HEAD (stored file digest)"
        headers = self._headers({"Want-Repr-Digest": "sha-256=10"})
        async with request(self._http, "HEAD", url, what, headers=headers) as r:
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            if r.headers.get("Upload-Complete") != "?1":
                raise TargetError(f"{what}: the server does not say the upload is complete")
            digest = parse_repr_digest(r.headers.get("Repr-Digest"))
        name = url.rstrip("/").rsplit("/", 1)[-1]
        sha256 = digest.hex() if digest is not None else None
        return RemoteFile(uri=url, name=name, size=self._plan.file_size, sha256=sha256)

    async def abort(self) -> None:
        if self._url is None:
            return
        try:
            async with request(
                self._http, "DELETE", self._url, "DELETE (cancel)", headers=self._headers()
            ):
                pass
        except TargetError:
            pass  # best effort: the server's expiry cleans up what we could not

    def state(self) -> dict[str, Any]:
        return {"url": self._url, "version": self._version}
