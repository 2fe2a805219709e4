"""tus 1.0 client: discovery, creation, PATCH, HEAD after any error, concatenation, termination.

Headers are built and read by `protocols.tus`, shared with the server; this module only does
the I/O and keeps the upload URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp

from ..engine.planner import Part, Plan
from ..errors import IntegrityError, ProtocolError, TargetError, UploadGone
from ..protocols import tus
from ..protocols.http import error_for_status, parse_repr_digest
from .base import Body, RemoteFile, RemoteUpload, SourceInfo, Target
from .capabilities import Capabilities
from .http import body_payload, request

#: Partial uploads created at the same time (each is one small POST).
CREATE_AT_ONCE = 32


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """The errors of a group, TargetErrors first (they say what the server refused)."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        else:
            flat.append(e)
    yield from sorted(flat, key=lambda e: not isinstance(e, TargetError))


class TusTarget(Target):
    """Any tus 1.0 server: upwell serve, tusd, @tus/server, Supabase Storage."""

    kind = "tus"

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None) -> None:
        self._endpoint = endpoint
        self._headers = dict(headers or {})
        self._info: tus.ServerInfo | None = None
        self._caps: Capabilities | None = None

    @property
    def url(self) -> str:
        return self._endpoint

    @property
    def endpoint(self) -> str:
        """The creation endpoint uploads are POSTed to (a preset's `url` may name it
        otherwise)."""
        return self._endpoint

    @property
    def info(self) -> tus.ServerInfo | None:
        return self._info

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Tus-Resumable": tus.TUS_VERSION, **self._headers}
        if extra:
            h.update(extra)
        return h

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        if self._caps is not None:
            return self._caps
        async with request(
            http, "OPTIONS", self._endpoint, "OPTIONS (discovery)", headers=self.headers()
        ) as r:
            if r.status >= 400 and r.status not in (404, 405):
                raise error_for_status(r.status, r.headers, "OPTIONS (discovery)", await r.text())
            # A server that does not answer OPTIONS still speaks core tus + creation.
            info = (
                tus.ServerInfo.from_headers(r.headers)
                if r.status < 300
                else tus.ServerInfo((tus.TUS_VERSION,), ("creation",), None, ())
            )
        if info.versions and tus.TUS_VERSION not in info.versions:
            raise TargetError(
                f"the tus server speaks {', '.join(info.versions)}, not {tus.TUS_VERSION}"
            )
        self._info = info
        algorithm = info.checksum_algorithm() if info.supports("checksum") else None
        self._caps = Capabilities(
            parallel_parts=info.supports("concatenation"),
            append=True,
            resume=True,
            checksum_algorithms=(algorithm,) if algorithm else (),
            compression=tuple(e for e in info.accept_encodings if e == "gzip"),
            max_size=info.max_size,
            part_digests=True,
        )
        return self._caps

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        what = "HEAD (finished upload)"
        async with request(http, "HEAD", file.uri, what, headers=self.headers()) as r:
            if r.status in (404, 410):
                return False
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            length = r.headers.get("Upload-Length")
            return length is not None and r.headers.get("Upload-Offset") == length

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> TusUpload:
        if self._info is None:
            raise RuntimeError("open() the target before starting an upload")
        return TusUpload(self, http, source, plan, state)


class TusUpload(RemoteUpload):
    """One file at a tus server: a single upload, or partial uploads plus a final one."""

    def __init__(
        self,
        target: TusTarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None,
    ) -> None:
        assert target.info is not None
        self._t = target
        self._info = target.info
        self._http = http
        self._source = source
        self._plan = plan
        state = state or {}
        self._part_urls: dict[int, str] = {int(k): v for k, v in state.get("parts", {}).items()}
        self._final_url: str | None = state.get("final")
        caps_algos = (target._caps.checksum_algorithms if target._caps else ()) or ()
        self._checksum = caps_algos[0] if caps_algos else None
        # After a connection broke mid-PATCH, later PATCHes go without Upload-Checksum: a
        # server drops a checksummed body whole when it is cut, but keeps what arrived of an
        # unchecked one. The bytes so kept are verified by the whole file's digest at the end.
        self._unchecked = bool(state.get("unchecked"))
        # Parts whose stored SHA-256 (Repr-Digest on the request that completed them) matched
        # the client's: when all are, the assembled file needs no read-back to be trusted.
        self._verified: set[int] = set()

    # -- helpers --------------------------------------------------------------------------
    def _metadata(self) -> str:
        return tus.encode_metadata(
            {"filename": self._source.name, "filetype": self._source.mime_type}
        )

    def _creation_headers(self, length: int, partial: bool) -> dict[str, str]:
        h = {"Upload-Length": str(length)}
        if partial:
            h["Upload-Concat"] = "partial"
        else:
            h["Upload-Metadata"] = self._metadata()
        return h

    def _location(self, response: aiohttp.ClientResponse, what: str) -> str:
        loc = response.headers.get("Location")
        if not loc:
            raise TargetError(f"{what}: the server answered {response.status} without a Location")
        return urljoin(str(response.url), loc)

    def _body_headers(self, body: Body) -> dict[str, str]:
        h = {"Content-Type": tus.OFFSET_CONTENT_TYPE}
        if body.encoding:
            # The encoded length is known only once sent: the body goes chunked, and the
            # server counts offsets in decoded bytes.
            h["Content-Encoding"] = body.encoding
        else:
            h["Content-Length"] = str(body.size)
        if self._checksum and not self._unchecked and self._checksum in body.digests:
            h["Upload-Checksum"] = tus.format_checksum(self._checksum, body.digests[self._checksum])
        return h

    def _creation_error(
        self, status: int, headers: Mapping[str, str], what: str, body: str
    ) -> TargetError:
        """Why a creation POST failed (a preset may know a status means something final)."""
        return error_for_status(status, headers, what, body)

    def _read_offset(self, response: aiohttp.ClientResponse, what: str) -> int:
        try:
            return tus.parse_uint(response.headers.get("Upload-Offset"), "Upload-Offset")
        except ProtocolError as exc:
            raise TargetError(f"{what}: {exc}", retryable=True) from None

    @property
    def _single(self) -> bool:
        return len(self._plan.parts) == 1

    def _use_creation_with_upload(self, part: Part) -> bool:
        return (
            self._single and len(part.chunks) == 1 and self._info.supports("creation-with-upload")
        )

    # -- RemoteUpload ---------------------------------------------------------------------
    async def create(self) -> None:
        """Create every part not created yet, several at once (one round trip, not one each)."""
        todo = [
            p
            for p in self._plan.parts
            if p.index not in self._part_urls and not self._use_creation_with_upload(p)
        ]
        gate = asyncio.Semaphore(CREATE_AT_ONCE)

        async def one(part: Part) -> None:
            what = "POST (create upload)"
            headers = self._t.headers(self._creation_headers(part.size, partial=not self._single))
            async with (
                gate,
                request(self._http, "POST", self._t.endpoint, what, headers=headers) as r,
            ):
                if r.status != 201:
                    raise self._creation_error(r.status, r.headers, what, await r.text())
                self._part_urls[part.index] = self._location(r, what)

        if len(todo) == 1:
            await one(todo[0])
            return
        try:
            async with asyncio.TaskGroup() as tg:
                for part in todo:
                    tg.create_task(one(part))
        except BaseExceptionGroup as group:
            # The parts created so far are kept (state() lists them); a retry creates the rest.
            raise next(iter(_leaves(group))) from None

    async def part_offset(self, part: Part) -> int:
        url = self._part_urls.get(part.index)
        if url is None:
            return 0
        what = f"HEAD (offset of part {part.index})"
        async with request(self._http, "HEAD", url, what, headers=self._t.headers()) as r:
            if r.status in (404, 410):
                raise UploadGone(
                    f"{what}: the server no longer has this upload (HTTP {r.status})",
                    status=r.status,
                )
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            return self._read_offset(r, what)

    async def send(self, part: Part, body: Body) -> int:
        rel = body.offset - part.offset
        url = self._part_urls.get(part.index)
        data = body_payload(body, tus.OFFSET_CONTENT_TYPE)
        if url is None:
            # creation-with-upload: the file fits in one request, so create and send at once.
            what = "POST (create upload with data)"
            headers = self._t.headers(
                {**self._creation_headers(part.size, partial=False), **self._body_headers(body)}
            )
            async with request(
                self._http, "POST", self._t.endpoint, what, headers=headers, data=data
            ) as r:
                if r.status != 201:
                    raise self._creation_error(r.status, r.headers, what, await r.text())
                self._part_urls[part.index] = self._location(r, what)
                if "Upload-Offset" not in r.headers:
                    return await self.part_offset(part)
                return self._check_part(part, body, self._read_offset(r, what), r, what)
        what = f"PATCH at offset {body.offset}"
        headers = self._t.headers({"Upload-Offset": str(rel), **self._body_headers(body)})
        try:
            async with request(self._http, "PATCH", url, what, headers=headers, data=data) as r:
                if r.status == 460 or (r.status == 400 and "checksum" in (await r.text()).lower()):
                    raise TargetError(
                        f"{what}: the server found a checksum mismatch", status=460, retryable=True
                    )
                if r.status != 204 and r.status != 200:
                    raise error_for_status(r.status, r.headers, what, await r.text())
                return self._check_part(part, body, self._read_offset(r, what), r, what)
        except TargetError as exc:
            if exc.status is None and exc.retryable:  # the connection broke: a flaky link
                self._unchecked = True
            raise

    def _check_part(
        self, part: Part, body: Body, rel: int, response: aiohttp.ClientResponse, what: str
    ) -> int:
        """A part just completed: compare the server's digest of it, when it sent one, with
        the client's; a mismatch means the stored part is not the file's bytes."""
        if rel != part.size or body.part_sha256 is None:
            return rel
        stored = parse_repr_digest(response.headers.get("Repr-Digest"))
        if stored is None:
            return rel
        if stored != body.part_sha256:
            raise IntegrityError(
                f"{what}: the server stored part {part.index} with SHA-256 {stored.hex()[:12]}…, "
                f"but the file's bytes hash to {body.part_sha256.hex()[:12]}…"
            )
        self._verified.add(part.index)
        return rel

    async def finish(self) -> RemoteFile:
        if self._single:
            url = self._part_urls[0]
        elif self._final_url is not None:
            url = self._final_url
        else:
            what = "POST (concatenate parts)"
            urls = [self._part_urls[p.index] for p in self._plan.parts]
            headers = self._t.headers(
                {
                    "Upload-Concat": tus.format_concat_final(urls),
                    "Upload-Metadata": self._metadata(),
                }
            )
            async with request(self._http, "POST", self._t.endpoint, what, headers=headers) as r:
                if r.status != 201:
                    raise error_for_status(r.status, r.headers, what, await r.text())
                url = self._location(r, what)
            self._final_url = url
        name = url.rstrip("/").rsplit("/", 1)[-1]
        sha256 = await self._stored_sha256(url) if self._needs_file_check() else None
        return RemoteFile(uri=url, name=name, size=self._plan.file_size, sha256=sha256)

    def _needs_file_check(self) -> bool:
        """Per-request checksums prove every byte of a single upload, and the server's digest
        of each part proves the parts; a file assembled from parts not all proven that way, or
        one sent (in part) without checksums, is checked whole (the server reads it back)."""
        if all(p.index in self._verified for p in self._plan.parts):
            return False
        return not self._single or self._checksum is None or self._unchecked

    async def _stored_sha256(self, url: str) -> str | None:
        """The server's SHA-256 of the stored file (RFC 9530 Repr-Digest), if it offers one."""
        what = "HEAD (stored file digest)"
        headers = self._t.headers({"Want-Repr-Digest": "sha-256=10"})
        async with request(self._http, "HEAD", url, what, headers=headers) as r:
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            digest = parse_repr_digest(r.headers.get("Repr-Digest"))
        return digest.hex() if digest is not None else None

    async def abort(self) -> None:
        if not self._info.supports("termination"):
            return
        for url in [*self._part_urls.values(), *([self._final_url] if self._final_url else [])]:
            try:
                async with request(
                    self._http, "DELETE", url, "DELETE (terminate)", headers=self._t.headers()
                ):
                    pass
            except TargetError:
                continue  # best effort: the server's expiry cleans up what we could not

    def state(self) -> dict[str, Any]:
        return {
            "parts": {str(k): v for k, v in self._part_urls.items()},
            "final": self._final_url,
            "unchecked": self._unchecked,
        }
