"""`S3ByteStore`: upload bytes in an S3 bucket (`--storage s3://bucket/prefix`).

An unfinished upload is a multipart upload on `<prefix>/<id>` plus, when its bytes do not fill
a part, one small pending object `<prefix>/<id>.pending/<start>` holding the bytes from `start`
(the end of the parts) on. Nothing else is kept: given the offset the state store committed,
the parts whose sizes add up to at most that offset, followed by the first bytes of the pending
object at their end, are the upload. Parts or a longer pending object written by a request that
never committed (a replica killed mid-PATCH) lie past the offset and are ignored, then
overwritten. A finished upload is sealed: its pending tail becomes the last part and the
multipart upload is completed into one object, read with Range by GET. Concatenation copies
the partial uploads' objects into a new multipart upload by UploadPartCopy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..ids import is_upload_id
from . import Appended, Checksum

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's smallest part but the last
PART_SIZE = 8 * MiB  # what a writer gathers before it sends a part
MAX_COPY = 5 * 1024 * MiB  # UploadPartCopy's largest range
READ_SLICE = 1024 * 1024
POOL_CONNECTIONS = 64


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` as (bucket, prefix without slashes at its ends)."""
    if not url.startswith("s3://"):
        raise ConfigError(f"not an s3:// URL: {url[:60]!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError("the s3:// storage URL names no bucket")
    return bucket, prefix.strip("/")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@dataclass(frozen=True)
class _Part:
    number: int
    etag: str
    size: int


@dataclass
class _Layout:
    """An unfinished upload as stored: committed parts, then the pending bytes."""

    multipart: str | None
    parts: list[_Part]
    pending: bytearray = field(default_factory=bytearray)

    @property
    def base(self) -> int:
        return sum(p.size for p in self.parts)


class S3ByteStore:
    """Upload bytes in S3; every replica reads what any other wrote."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, exit_stack: contextlib.AsyncExitStack
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix
        self._stack = exit_stack
        self.part_size = PART_SIZE

    @classmethod
    async def open(cls, url: str) -> S3ByteStore:
        bucket, prefix = parse_s3_url(url)
        from ...aws import AWSSettings, s3_client

        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            s3_client(AWSSettings.from_env(max_connections=POOL_CONNECTIONS))
        )
        try:
            await client.head_bucket(Bucket=bucket)
        except Exception as exc:
            await stack.aclose()
            raise ConfigError(f"cannot use the S3 bucket {bucket!r}: {exc}") from None
        return cls(client, bucket, prefix, stack)

    def key(self, upload_id: str) -> str:
        if not is_upload_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id[:40]!r}")
        return f"{self._prefix}/{upload_id}" if self._prefix else upload_id

    def _pending_prefix(self, upload_id: str) -> str:
        return f"{self.key(upload_id)}.pending/"

    def _pending_key(self, upload_id: str, start: int) -> str:
        return f"{self._pending_prefix(upload_id)}{start:020d}"

    # -- the ByteStore interface ------------------------------------------------------------

    async def create(self, upload_id: str) -> None:
        self.key(upload_id)  # nothing to make: the first part or tail creates what is needed

    async def open_writer(
        self, upload_id: str, offset: int, checksum: Checksum | None = None
    ) -> S3Writer:
        layout = await self._layout(upload_id, offset)
        await self._drop_pending(upload_id, keep=layout.base if layout.pending else None)
        return S3Writer(self, upload_id, offset, layout, checksum)

    async def seal(self, upload_id: str, length: int) -> None:
        """Make a finished upload one object (idempotent; a no-op once sealed)."""
        key = self.key(upload_id)
        if await self._exists(key):
            return
        try:
            layout = await self._layout(upload_id, length)
            if not layout.parts:
                await self._s3.put_object(Bucket=self._bucket, Key=key, Body=bytes(layout.pending))
                if layout.multipart is not None:
                    await self._abort(key, layout.multipart)
            else:
                assert layout.multipart is not None
                parts = list(layout.parts)
                if layout.pending:
                    parts.append(
                        await self._upload_part(
                            key, layout.multipart, len(parts) + 1, bytes(layout.pending)
                        )
                    )
                await self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=layout.multipart,
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                    },
                )
        except Exception:
            if await self._exists(key):  # another replica sealed it meanwhile
                return
            raise
        await self._drop_pending(upload_id, keep=None)

    async def concatenate(self, upload_id: str, parts: Sequence[str]) -> int:
        key = self.key(upload_id)
        sources: list[tuple[str, int]] = []
        for part in parts:
            head = await self._s3.head_object(Bucket=self._bucket, Key=self.key(part))
            sources.append((self.key(part), int(head["ContentLength"])))
        total = sum(size for _, size in sources)
        if total == 0:
            await self._s3.put_object(Bucket=self._bucket, Key=key, Body=b"")
            return 0
        created = await self._s3.create_multipart_upload(Bucket=self._bucket, Key=key)
        multipart = str(created["UploadId"])
        done: list[_Part] = []
        buffer = bytearray()
        try:
            for source, size in sources:
                position = 0
                while position < size:
                    remaining = size - position
                    if not buffer and remaining >= MIN_PART:
                        length = min(remaining, MAX_COPY)
                        done.append(
                            await self._copy_part(
                                key, multipart, len(done) + 1, source, position, length
                            )
                        )
                        position += length
                        continue
                    take = min(remaining, self.part_size - len(buffer))
                    buffer += await self._read_range(source, position, position + take)
                    position += take
                    if len(buffer) >= self.part_size:
                        done.append(
                            await self._upload_part(key, multipart, len(done) + 1, bytes(buffer))
                        )
                        buffer.clear()
            if buffer:
                done.append(await self._upload_part(key, multipart, len(done) + 1, bytes(buffer)))
            await self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=multipart,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in done]},
            )
        except BaseException:
            await self._abort(key, multipart)
            raise
        return total

    async def delete(self, upload_id: str) -> None:
        key = self.key(upload_id)
        await self._drop_pending(upload_id, keep=None)
        for multipart in await self._multiparts(key):
            await self._abort(key, multipart)
        await self._s3.delete_object(Bucket=self._bucket, Key=key)

    async def segments(self, upload_id: str) -> list[Path] | None:
        return None  # not on local disk: read() streams from the object

    async def read(self, upload_id: str, start: int, stop: int) -> AsyncIterator[bytes]:
        """The sealed upload's bytes [start, stop)."""
        if start >= stop:
            return
        response = await self._s3.get_object(
            Bucket=self._bucket, Key=self.key(upload_id), Range=f"bytes={start}-{stop - 1}"
        )
        async with response["Body"] as body:
            while chunk := await body.read(READ_SLICE):
                yield chunk

    async def sha256(self, upload_id: str) -> bytes:
        digest = hashlib.sha256()
        head = await self._s3.head_object(Bucket=self._bucket, Key=self.key(upload_id))
        async for chunk in self.read(upload_id, 0, int(head["ContentLength"])):
            await asyncio.to_thread(digest.update, chunk)
        return digest.digest()

    async def untouched_since(self, when: datetime) -> list[str]:
        newest: dict[str, datetime] = {}
        start = f"{self._prefix}/" if self._prefix else ""
        async for item in self._objects(start):
            upload_id = str(item["Key"])[len(start) :].split(".", 1)[0].split("/", 1)[0]
            if is_upload_id(upload_id):
                stamp = item["LastModified"]
                newest[upload_id] = max(stamp, newest.get(upload_id, stamp))
        markers: dict[str, str] = {}
        while True:
            page = await self._s3.list_multipart_uploads(
                Bucket=self._bucket, Prefix=start, **markers
            )
            for item in page.get("Uploads", []):
                upload_id = str(item["Key"])[len(start) :]
                if is_upload_id(upload_id):
                    stamp = item["Initiated"]
                    newest[upload_id] = max(stamp, newest.get(upload_id, stamp))
            if not page.get("IsTruncated"):
                break
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }
        return sorted(i for i, stamp in newest.items() if stamp < when)

    async def close(self) -> None:
        await self._stack.aclose()

    # -- helpers --------------------------------------------------------------------------

    async def _objects(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        """Every object under `prefix` (ListObjectsV2, page by page)."""
        token: dict[str, str] = {}
        while True:
            page = await self._s3.list_objects_v2(Bucket=self._bucket, Prefix=prefix, **token)
            for item in page.get("Contents", []):
                yield item
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def _exists(self, key: str) -> bool:
        try:
            await self._s3.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def _multiparts(self, key: str) -> list[str]:
        found = await self._s3.list_multipart_uploads(Bucket=self._bucket, Prefix=key)
        uploads = sorted(
            (u for u in found.get("Uploads", []) if u["Key"] == key),
            key=lambda u: u["Initiated"],
        )
        return [str(u["UploadId"]) for u in uploads]

    async def _abort(self, key: str, multipart: str) -> None:
        with contextlib.suppress(Exception):  # already completed or aborted
            await self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=multipart)

    async def _layout(self, upload_id: str, offset: int) -> _Layout:
        key = self.key(upload_id)
        multiparts = await self._multiparts(key)
        multipart = multiparts[0] if multiparts else None
        parts: list[_Part] = []
        if multipart is not None:
            listed: list[_Part] = []
            marker = 0
            while True:  # by hand, not a paginator: those load another JSON model from disk
                page = await self._s3.list_parts(
                    Bucket=self._bucket, Key=key, UploadId=multipart, PartNumberMarker=marker
                )
                listed += [
                    _Part(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
                    for p in page.get("Parts", [])
                ]
                if not page.get("IsTruncated"):
                    break
                marker = int(page["NextPartNumberMarker"])
            total = 0
            for number, part in enumerate(sorted(listed, key=lambda p: p.number), start=1):
                if part.number != number or total + part.size > offset:
                    break
                parts.append(part)
                total += part.size
        layout = _Layout(multipart, parts)
        need = offset - layout.base
        if need:
            layout.pending = bytearray(
                await self._read_range(self._pending_key(upload_id, layout.base), 0, need)
            )
            if len(layout.pending) != need:
                raise OSError(f"upload {upload_id}: {need} stored bytes are missing in S3")
        return layout

    async def _drop_pending(self, upload_id: str, keep: int | None) -> None:
        """Delete pending objects but the one starting at `keep` (superseded, or leftovers)."""
        prefix = self._pending_prefix(upload_id)
        kept = None if keep is None else self._pending_key(upload_id, keep)
        async for item in self._objects(prefix):
            if item["Key"] != kept:
                await self._s3.delete_object(Bucket=self._bucket, Key=item["Key"])

    async def _read_range(self, key: str, start: int, stop: int) -> bytes:
        response = await self._s3.get_object(
            Bucket=self._bucket, Key=key, Range=f"bytes={start}-{stop - 1}"
        )
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def _upload_part(self, key: str, multipart: str, number: int, data: bytes) -> _Part:
        answer = await self._s3.upload_part(
            Bucket=self._bucket, Key=key, UploadId=multipart, PartNumber=number, Body=data
        )
        return _Part(number, str(answer["ETag"]), len(data))

    async def _copy_part(
        self, key: str, multipart: str, number: int, source: str, start: int, length: int
    ) -> _Part:
        answer = await self._s3.upload_part_copy(
            Bucket=self._bucket,
            Key=key,
            UploadId=multipart,
            PartNumber=number,
            CopySource={"Bucket": self._bucket, "Key": source},
            CopySourceRange=f"bytes={start}-{start + length - 1}",
        )
        return _Part(number, str(answer["CopyPartResult"]["ETag"]), length)

    async def new_multipart(self, upload_id: str) -> str:
        created = await self._s3.create_multipart_upload(
            Bucket=self._bucket, Key=self.key(upload_id)
        )
        return str(created["UploadId"])

    async def upload_part(self, upload_id: str, multipart: str, number: int, data: bytes) -> _Part:
        return await self._upload_part(self.key(upload_id), multipart, number, data)

    async def put_pending(self, upload_id: str, start: int, data: bytes) -> None:
        await self._s3.put_object(
            Bucket=self._bucket, Key=self._pending_key(upload_id, start), Body=data
        )


class S3Writer:
    """Appends one request's bytes: whole parts as they fill, the rest as the pending tail.

    A part is sent once `part_size` bytes are gathered (one in flight); at the end the bytes
    that fill no part are written as the pending object, so everything acknowledged is in S3.
    """

    def __init__(
        self,
        store: S3ByteStore,
        upload_id: str,
        offset: int,
        layout: _Layout,
        checksum: Checksum | None,
    ) -> None:
        self._store = store
        self._id = upload_id
        self._start = offset
        self._multipart = layout.multipart
        self._parts = list(layout.parts)
        self._buffer = layout.pending  # bytes from the end of the parts on
        self._checksum = checksum
        self._hasher = hashlib.new(checksum.algorithm) if checksum else None
        self._sent = 0  # bytes of this request in parts already sent

    async def write(self, buffers: list[bytes]) -> None:
        if self._hasher is not None:
            await asyncio.to_thread(_update, self._hasher, buffers)
        for buffer in buffers:
            self._buffer += buffer
        if len(self._buffer) >= self._store.part_size:
            await self._send_part()

    async def _send_part(self) -> None:
        if self._multipart is None:
            self._multipart = await self._store.new_multipart(self._id)
        data = bytes(self._buffer)
        self._parts.append(
            await self._store.upload_part(self._id, self._multipart, len(self._parts) + 1, data)
        )
        self._buffer.clear()

    async def finish(self, tail: list[bytes], *, keep: bool = True) -> Appended:
        mismatch = False
        if keep and tail:
            await self.write(tail)
        if keep and self._checksum is not None and self._hasher is not None:
            mismatch = not hmac.compare_digest(self._hasher.digest(), self._checksum.digest)
            keep = not mismatch
        if not keep:
            # What this request sent lies past the committed offset: ignored, then overwritten.
            return Appended(kept=0, checksum_mismatch=mismatch)
        base = sum(p.size for p in self._parts)
        if self._buffer:
            await self._store.put_pending(self._id, base, bytes(self._buffer))
        return Appended(kept=base + len(self._buffer) - self._start)


def _update(hasher: Any, buffers: list[bytes]) -> None:
    for buffer in buffers:
        hasher.update(buffer)
