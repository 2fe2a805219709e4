"""S3 and compatibles (MinIO, R2, Supabase S3, moto): multipart upload, or one PutObject for a
file that fits in one part.

Control calls (CreateMultipartUpload, ListParts, CompleteMultipartUpload, AbortMultipartUpload,
HeadObject) go through aiobotocore. Part bodies do not: botocore wants a body in memory or a
blocking file, so each part goes to a presigned URL (its SHA-256 among the signed headers)
through the uploader's pooled aiohttp session, streamed from disk by sendfile like every other
upwell body. Part numbers follow chunks (part n is chunk n - 1), so a part retried or resumed is
the same part whatever the engine's grouping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import yarl

from ..aws import AWSSettings, check_installed, s3_client
from ..engine.planner import Part, Plan
from ..errors import TargetError
from ..protocols import s3_multipart as s3
from .base import Body, RemoteFile, RemoteUpload, SourceInfo, Target
from .capabilities import Capabilities
from .http import body_payload, request

log = logging.getLogger("upwell")
T = TypeVar("T")


class S3Target(Target):
    """`s3://bucket/key` (a key ending in `/` is a prefix for the file name)."""

    kind = "s3"

    def __init__(self, location: str | s3.ObjectURL, aws: AWSSettings | None = None) -> None:
        self.location = s3.parse_s3_url(location) if isinstance(location, str) else location
        check_installed()
        self.aws = aws or AWSSettings.from_env()
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return str(self.location)

    async def client(self) -> Any:
        """The aiobotocore client, made on first use and kept until close()."""
        async with self._lock:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                try:
                    self._client = await stack.enter_async_context(s3_client(self.aws))
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
            return self._client

    async def close(self) -> None:
        async with self._lock:
            stack, self._stack, self._client = self._stack, None, None
            if stack is not None:
                await stack.aclose()

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        await self.client()
        return Capabilities(
            parallel_parts=True,
            append=False,
            resume=True,
            checksum_algorithms=("sha256",),
            max_size=s3.MAX_OBJECT_SIZE,
            min_part_size=s3.MIN_PART_SIZE,
            max_parts=s3.MAX_PARTS,
            max_chunk_size=s3.MAX_PART_SIZE,
        )

    async def call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """`fn(client)`, with botocore's errors raised as TargetErrors."""
        client = await self.client()
        return await _mapped(what, fn(client))

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        bucket = str(file.extra.get("bucket") or self.location.bucket)
        try:
            head = await self.call(
                "HeadObject", lambda c: c.head_object(Bucket=bucket, Key=file.name)
            )
        except TargetError as exc:
            if exc.status == 404:
                return False
            raise
        return int(head.get("ContentLength", -1)) == file.size

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> S3Upload:
        return S3Upload(self, http, source, plan, state)


async def _mapped(what: str, call: Awaitable[T]) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return await call
    except ClientError as exc:
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        raise s3.error_for(
            what,
            meta.get("HTTPStatusCode"),
            str(err.get("Code", "")),
            str(err.get("Message", "")),
            meta.get("HTTPHeaders"),
        ) from None
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise TargetError(f"{what}: connection failed ({exc})", retryable=True) from None


class S3Upload(RemoteUpload):
    """One object: a multipart upload (id and key kept in the state), or one PutObject."""

    def __init__(
        self,
        target: S3Target,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None,
    ) -> None:
        self._t = target
        self._http = http
        self._source = source
        self._plan = plan
        state = state or {}
        self.bucket: str = state.get("bucket") or target.location.bucket
        self.key: str = state.get("key") or target.location.object_key(_base_name(source))
        self.upload_id: str | None = state.get("upload_id")
        self._single = len(plan.chunks) <= 1
        self._done: dict[int, s3.ListedPart] = {}
        self._listed: dict[int, s3.ListedPart] | None = None
        self._put: dict[str, str] = {}
        s3.check_layout(plan.file_size, plan.chunk_size)

    # -- RemoteUpload ---------------------------------------------------------------------
    async def create(self) -> None:
        if self._single or self.upload_id is not None:
            return
        answer = await self._t.call(
            "CreateMultipartUpload",
            lambda c: c.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                ContentType=self._source.mime_type,
                ChecksumAlgorithm="SHA256",
            ),
        )
        self.upload_id = str(answer["UploadId"])
        log.debug("created multipart upload for %s/%s", self.bucket, self.key)

    async def part_offset(self, part: Part) -> int:
        """The bytes of `part` S3 holds: the run of its chunks that ListParts lists whole."""
        if self._single or self.upload_id is None:
            return 0
        listed = await self._list()
        held = 0
        for chunk in part.chunks:
            number = s3.part_number(chunk.offset, self._plan.chunk_size)
            if not s3.usable(listed.get(number), chunk.size):
                break
            held += chunk.size
        return held

    async def _list(self, fresh: bool = False) -> dict[int, s3.ListedPart]:
        if self._listed is not None and not fresh:
            return self._listed
        assert self.upload_id is not None
        upload_id = self.upload_id
        pages: list[dict[str, Any]] = []
        marker: int | None = 0
        while marker is not None:
            page = await self._t.call(
                "ListParts",
                functools.partial(
                    _list_page, bucket=self.bucket, key=self.key, upload_id=upload_id, at=marker
                ),
            )
            pages.append(page)
            marker = s3.next_marker(page)
        self._listed = s3.listed_parts(pages)
        return self._listed

    async def send(self, part: Part, body: Body) -> int:
        if body.encoding is not None:
            raise TargetError("S3 parts are sent as they are, not encoded")
        checksum = s3.checksum_value(body.digests["sha256"])
        if self._single:
            number = 0
            what = "PutObject"
            params: dict[str, Any] = {"ContentType": self._source.mime_type}
            operation = "put_object"
        else:
            number = s3.part_number(body.offset, self._plan.chunk_size)
            what = f"UploadPart {number}"
            params = {"UploadId": self.upload_id, "PartNumber": number}
            operation = "upload_part"
        params.update(Bucket=self.bucket, Key=self.key, ChecksumSHA256=checksum)
        url = await self._t.call(
            f"{what} (presign)",
            lambda c: c.generate_presigned_url(
                operation, Params=params, ExpiresIn=s3.PRESIGN_EXPIRES
            ),
        )
        content_type = self._source.mime_type if self._single else "application/octet-stream"
        headers = s3.presigned_headers(
            url,
            {
                "content-type": content_type,
                "x-amz-checksum-sha256": checksum,
                "x-amz-sdk-checksum-algorithm": "SHA256",
            },
        )
        headers.setdefault("x-amz-checksum-sha256", checksum)
        headers["Content-Type"] = content_type
        data = body_payload(body, content_type)
        async with request(
            self._http, "PUT", yarl.URL(url, encoded=True), what, headers=headers, data=data
        ) as r:
            text = await r.text()
            if r.status != 200:
                err = s3.parse_error_xml(text)
                raise s3.error_for(
                    what, r.status, err.code if err else "", err.message if err else "", r.headers
                )
            etag = r.headers.get("ETag", "")
            stored = r.headers.get("x-amz-checksum-sha256")
        if stored is not None and stored != checksum:
            raise TargetError(f"{what}: S3 stored SHA-256 {stored}, not {checksum}", retryable=True)
        if self._single:
            self._put = {"etag": etag, "checksum": checksum}
        else:
            self._done[number] = s3.ListedPart(number, body.size, etag, checksum)
        return body.offset + body.size - part.offset

    async def finish(self) -> RemoteFile:
        extra: dict[str, Any] = {"bucket": self.bucket}
        if self._single:
            sha = self._put.get("checksum")
            extra["etag"] = self._put.get("etag")
            return RemoteFile(
                uri=f"s3://{self.bucket}/{self.key}",
                name=self.key,
                size=self._plan.file_size,
                sha256=_hex(sha) if sha else None,
                extra=extra,
            )
        parts = await self._parts_for_complete()
        assert self.upload_id is not None
        upload_id = self.upload_id
        expected = s3.composite_checksum([parts[n].checksum_sha256 or "" for n in sorted(parts)])
        try:
            answer = await self._t.call(
                "CompleteMultipartUpload",
                lambda c: c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    MultipartUpload=s3.complete_parts(parts),
                ),
            )
        except TargetError as exc:
            # A retried Complete whose first answer was lost finds the upload gone: the object
            # is there if its composite checksum is ours.
            if exc.status != 404 or not await self._completed_as(expected):
                raise
            answer = {"ETag": None, "ChecksumSHA256": expected}
        stored = answer.get("ChecksumSHA256")
        if stored and expected and stored.split("-")[0] != expected.split("-")[0]:
            raise TargetError(
                f"CompleteMultipartUpload: S3's checksum {stored} is not upwell's {expected}"
            )
        extra.update(etag=answer.get("ETag"), checksum_sha256=stored or expected)
        return RemoteFile(
            uri=f"s3://{self.bucket}/{self.key}",
            name=self.key,
            size=self._plan.file_size,
            extra=extra,
        )

    async def _parts_for_complete(self) -> dict[int, s3.ListedPart]:
        """Every planned part with its ETag: sent by this run, or listed by S3."""
        numbers = [s3.part_number(c.offset, self._plan.chunk_size) for c in self._plan.chunks]
        parts = dict(self._listed or {})
        parts.update(self._done)
        if any(n not in parts for n in numbers):
            parts = {**await self._list(fresh=True), **self._done}
        missing = [n for n in numbers if n not in parts]
        if missing:
            raise TargetError(f"CompleteMultipartUpload: S3 lacks parts {missing[:5]}")
        return {n: parts[n] for n in numbers}

    async def _completed_as(self, expected: str) -> bool:
        try:
            head = await self._t.call(
                "HeadObject",
                lambda c: c.head_object(Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED"),
            )
        except TargetError:
            return False
        stored = head.get("ChecksumSHA256")
        return bool(stored) and str(stored).split("-")[0] == expected.split("-")[0]

    async def abort(self) -> None:
        if self._single or self.upload_id is None:
            return
        upload_id = self.upload_id
        with contextlib.suppress(TargetError):
            await self._t.call(
                "AbortMultipartUpload",
                lambda c: c.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                ),
            )

    def state(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "upload_id": self.upload_id}


def _base_name(source: SourceInfo) -> str:
    """The name a prefix key is completed with: the file's display name (a forwarded upload's
    original name, not its name on the server's disk), without any directory part."""
    return source.display_name.rsplit("/", 1)[-1] or source.name


def _list_page(client: Any, *, bucket: str, key: str, upload_id: str, at: int) -> Any:
    return client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=at)


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()
