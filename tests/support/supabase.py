"""A stand-in for Supabase Storage's resumable endpoint: upwell's own tus server at
`/storage/v1/upload/resumable/`, wrapped in a middleware that enforces Supabase's rules.

The rules, from Supabase's resumable-upload guide and its storage server:
- `apikey` must carry the project key; a JWT key also goes as `Authorization: Bearer`, an
  `sb_secret_…` key must not (it is no JWT) — 401 otherwise;
- creation needs `bucketName` and `objectName` metadata, the bucket must exist (404), an
  existing object is refused with 409 unless `x-upsert: true`;
- no concatenation (Tus-Extension lists what Supabase's tus server offers; Upload-Concat → 400);
- every PATCH carries exactly 6 MiB but the one that ends the upload, or, after a cut
  connection, the rest of the 6 MiB chunk it broke off (400 otherwise);
- HEAD/GET `/storage/v1/object/{bucket}/{name}` answers for a finished object.
tuspy and tus-js-client, configured as Supabase's guide shows, upload to it in
tests/interop, which is what makes it a faithful stand-in.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from upwell.errors import ProtocolError
from upwell.protocols import tus
from upwell.server.app import create_app
from upwell.server.runner import running_server
from upwell.server.settings import ServerSettings
from upwell.targets.supabase import CHUNK_SIZE, RESUMABLE_PATH, is_jwt

EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,expiration"
JWT_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
SECRET_KEY = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upload:
    bucket: str
    name: str
    length: int
    metadata: dict[str, str]
    upsert: bool


@dataclass
class SupabaseStorage:
    project_url: str
    key: str
    buckets: set[str]
    uploads: dict[str, Upload] = field(default_factory=dict)
    objects: dict[tuple[str, str], str] = field(default_factory=dict)  # -> upload id
    requests: list[dict[str, Any]] = field(default_factory=list)  # method, path, headers
    patches: list[tuple[str, int, int]] = field(default_factory=list)  # id, offset, length

    @property
    def endpoint(self) -> str:
        return self.project_url + RESUMABLE_PATH

    def auth(self) -> dict[str, str]:
        headers = {"apikey": self.key}
        if is_jwt(self.key):
            headers["Authorization"] = f"Bearer {self.key}"
        return headers


def _error(status: int, error: str, message: str) -> web.Response:
    body = {"statusCode": str(status), "error": error, "message": message}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _middleware(store: SupabaseStorage) -> Any:
    @web.middleware
    async def rules(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/storage/v1/"):
            return await handler(request)
        store.requests.append(
            {"method": request.method, "path": request.path, "headers": dict(request.headers)}
        )
        if request.headers.get("apikey") != store.key:
            return _error(401, "Unauthorized", "Invalid API key")
        authz = request.headers.get("Authorization")
        if is_jwt(store.key) and authz != f"Bearer {store.key}":
            return _error(
                401, "Unauthorized", "headers must have required property 'authorization'"
            )
        if not is_jwt(store.key) and authz is not None:
            return _error(401, "Unauthorized", "Invalid JWT")
        if request.path.startswith("/storage/v1/object/"):
            return _object(store, request)
        resumable = RESUMABLE_PATH + "/"
        upload_id = request.path[len(resumable) :] if request.path.startswith(resumable) else ""
        if request.method == "OPTIONS":
            response = await handler(request)
            response.headers["Tus-Extension"] = EXTENSIONS
            response.headers.pop("Tus-Checksum-Algorithm", None)
            response.headers.pop("Accept-Encoding", None)
            return response
        if request.method == "POST" and not upload_id:
            return await _create(store, request, handler)
        if request.method == "PATCH" and upload_id:
            return await _patch(store, request, handler, upload_id)
        return await handler(request)

    return rules


def _chunk_ok(offset: int, n: int, length: int) -> bool:
    """6 MiB, or the upload's last bytes, or (after a cut) the rest of a 6 MiB chunk."""
    end = offset + n
    return n <= CHUNK_SIZE and (n == CHUNK_SIZE or end == length or end % CHUNK_SIZE == 0)


async def _create(store: SupabaseStorage, request: web.Request, handler: Handler) -> Any:
    if "Upload-Concat" in request.headers:
        return _error(400, "InvalidRequest", "concatenation is not supported")
    try:
        meta = {
            k: v.decode()
            for k, v in tus.decode_metadata(request.headers.get("Upload-Metadata")).items()
        }
    except (ProtocolError, UnicodeDecodeError) as exc:
        return _error(400, "InvalidRequest", str(exc))
    bucket, name = meta.get("bucketName"), meta.get("objectName")
    if not bucket or not name:
        return _error(400, "InvalidRequest", "bucketName and objectName metadata are required")
    if bucket not in store.buckets:
        return _error(404, "Bucket not found", "Bucket not found")
    upsert = request.headers.get("x-upsert") == "true"
    if (bucket, name) in store.objects and not upsert:
        return _error(409, "Duplicate", "The resource already exists")
    length = int(request.headers.get("Upload-Length", "-1"))
    n = int(request.headers.get("Content-Length", "0"))
    if n and not _chunk_ok(0, n, length):
        return _error(400, "InvalidRequest", "chunks must be 6 MiB but the last")
    response = await handler(request)
    if response.status == 201:
        upload_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        store.uploads[upload_id] = Upload(bucket, name, length, meta, upsert)
        if n:
            store.patches.append((upload_id, 0, n))
        if response.headers.get("Upload-Offset") == str(length):
            store.objects[(bucket, name)] = upload_id
    return response


async def _patch(
    store: SupabaseStorage, request: web.Request, handler: Handler, upload_id: str
) -> Any:
    upload = store.uploads.get(upload_id)
    if upload is None:
        return _error(404, "Not Found", "Upload not found")
    offset = int(request.headers.get("Upload-Offset", "-1"))
    if "Content-Length" not in request.headers:
        return _error(400, "InvalidRequest", "Content-Length is required")
    n = int(request.headers["Content-Length"])
    if not _chunk_ok(offset, n, upload.length):
        return _error(400, "InvalidRequest", "chunks must be 6 MiB but the last")
    response = await handler(request)
    if response.status == 204:
        store.patches.append((upload_id, offset, n))
        if response.headers.get("Upload-Offset") == str(upload.length):
            store.objects[(upload.bucket, upload.name)] = upload_id
    return response


def _object(store: SupabaseStorage, request: web.Request) -> web.Response:
    rest = request.path[len("/storage/v1/object/") :]
    bucket, _, name = rest.partition("/")
    upload_id = store.objects.get((bucket, name))
    if upload_id is None:
        return _error(400, "not_found", "Object not found")
    return web.Response(status=200, headers={"X-Upload-Id": upload_id})


@contextlib.asynccontextmanager
async def supabase_storage(
    data_dir: Path, key: str = JWT_KEY, buckets: tuple[str, ...] = ("media",)
) -> AsyncIterator[SupabaseStorage]:
    settings = ServerSettings(
        host="127.0.0.1", port=0, data_dir=data_dir, base_path=RESUMABLE_PATH + "/"
    )
    app = create_app(settings)
    store = SupabaseStorage("", key, set(buckets))
    app.middlewares.insert(0, _middleware(store))
    async with running_server(settings, app) as url:
        store.project_url = url.removesuffix(RESUMABLE_PATH + "/")
        yield store
