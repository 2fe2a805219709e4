"""Supabase Storage: a preset of the tus target for `{SUPABASE_URL}/storage/v1/upload/resumable`.

Supabase's rules, from its resumable-upload documentation: the object is named by the
`bucketName` and `objectName` metadata (`contentType` and `cacheControl` beside them); chunks
are exactly 6 MiB but the last; one writer per upload URL, so no parallel parts; `x-upsert: true`
replaces an existing object, which is otherwise refused (409), a final error rather than a retry.
The key always travels as `apikey`, and also as `Authorization: Bearer` when it is a JWT (the
legacy `service_role` key); the newer `sb_secret_…` keys are not JWTs and go as `apikey` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ..engine.planner import Plan
from ..errors import ConfigError, TargetError
from ..protocols import tus
from ..protocols.http import error_for_status
from .base import RemoteFile, SourceInfo
from .capabilities import Capabilities
from .http import request
from .tus import TusTarget, TusUpload

CHUNK_SIZE = 6 * 1024 * 1024
RESUMABLE_PATH = "/storage/v1/upload/resumable"
DEFAULT_CACHE_CONTROL = "3600"
KEY_VARIABLES = ("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def is_jwt(key: str) -> bool:
    """Whether a Supabase key is a JWT (legacy anon/service_role), not an `sb_…` key."""
    return bool(_JWT.match(key))


def auth_headers(key: str) -> dict[str, str]:
    """`apikey` always; `Authorization: Bearer` only for a JWT."""
    headers = {"apikey": key}
    if is_jwt(key):
        headers["Authorization"] = f"Bearer {key}"
    return headers


def parse_location(spec: str) -> tuple[str, str]:
    """`supabase://bucket/path` → (bucket, path); a path ending in `/` (or none) is a prefix."""
    parts = urlsplit(spec)
    if parts.scheme != "supabase" or parts.query or parts.fragment:
        raise ConfigError(f"{spec!r} is not a supabase://bucket/path target")
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise ConfigError(f"Supabase bucket name {bucket!r} is not valid")
    return bucket, parts.path.removeprefix("/")


class SupabaseTarget(TusTarget):
    """A Supabase project's Storage, by its resumable (tus) endpoint."""

    kind = "supabase"

    def __init__(
        self,
        project_url: str,
        key: str,
        bucket: str,
        path: str,
        *,
        upsert: bool = False,
        cache_control: str = DEFAULT_CACHE_CONTROL,
    ) -> None:
        base = project_url.rstrip("/")
        u = urlsplit(base)
        if u.scheme not in ("http", "https") or not u.netloc or u.query or u.username:
            raise ConfigError(
                f"SUPABASE_URL {project_url!r} is not a project URL like https://<ref>.supabase.co"
            )
        if not key.strip():
            raise ConfigError("the Supabase target needs a key: set SUPABASE_SERVICE_ROLE_KEY")
        headers = auth_headers(key.strip())
        if upsert:
            headers["x-upsert"] = "true"
        super().__init__(base + RESUMABLE_PATH, headers)
        self.project_url = base
        self.bucket = bucket
        self.path = path
        self.upsert = upsert
        self.cache_control = cache_control

    @classmethod
    def from_env(cls, spec: str, env: Mapping[str, str], *, upsert: bool = False) -> SupabaseTarget:
        bucket, path = parse_location(spec)
        project = env.get("SUPABASE_URL", "").strip()
        if not project:
            raise ConfigError("the Supabase target needs SUPABASE_URL (https://<ref>.supabase.co)")
        key = next((env[v].strip() for v in KEY_VARIABLES if env.get(v, "").strip()), "")
        if not key:
            raise ConfigError(
                "the Supabase target needs a key: set SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_KEY)"
            )
        return cls(project, key, bucket, path, upsert=upsert)

    @property
    def url(self) -> str:
        return f"supabase://{self.bucket}/{self.path}"

    def object_name(self, file_name: str) -> str:
        return self.path + file_name if self.path == "" or self.path.endswith("/") else self.path

    def object_url(self, object_name: str) -> str:
        return f"{self.project_url}/storage/v1/object/{self.bucket}/{quote(object_name)}"

    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        if self._caps is not None:
            return self._caps
        caps = await super().open(http)
        # One writer per upload URL and 6 MiB chunks, whatever the server says of itself.
        self._caps = replace(
            caps,
            parallel_parts=False,
            compression=(),
            granularity=CHUNK_SIZE,
            max_chunk_size=CHUNK_SIZE,
        )
        return self._caps

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        what = "HEAD (stored object)"
        async with request(http, "HEAD", file.uri, what, headers=self.headers()) as r:
            if r.status in (400, 404):
                return False
            if r.status >= 300:
                raise error_for_status(r.status, r.headers, what)
            return True

    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> SupabaseUpload:
        if self.info is None:
            raise RuntimeError("open() the target before starting an upload")
        return SupabaseUpload(self, http, source, plan, state)


class SupabaseUpload(TusUpload):
    """One object in a bucket: tus with Supabase's metadata and its final 409."""

    def __init__(
        self,
        target: SupabaseTarget,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None,
    ) -> None:
        super().__init__(target, http, source, plan, state)
        self._sb = target
        self.object_name = (state or {}).get("object") or target.object_name(
            source.display_name.rsplit("/", 1)[-1] or source.name
        )

    def _metadata(self) -> str:
        return tus.encode_metadata(
            {
                "bucketName": self._sb.bucket,
                "objectName": self.object_name,
                "contentType": self._source.mime_type,
                "cacheControl": self._sb.cache_control,
            }
        )

    def _creation_error(
        self, status: int, headers: Mapping[str, str], what: str, body: str
    ) -> TargetError:
        if status == 409:
            return TargetError(
                f"{what}: {self._sb.bucket}/{self.object_name} already exists in Supabase "
                "Storage; pass --upsert (upsert=True) to replace it",
                status=409,
                retryable=False,
            )
        return super()._creation_error(status, headers, what, body)

    async def finish(self) -> RemoteFile:
        done = await super().finish()
        return RemoteFile(
            uri=self._sb.object_url(self.object_name),
            name=f"{self._sb.bucket}/{self.object_name}",
            size=done.size,
            sha256=done.sha256,
        )

    def state(self) -> dict[str, Any]:
        return {**super().state(), "object": self.object_name}
