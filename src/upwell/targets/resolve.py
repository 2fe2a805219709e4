"""Turn what a user wrote (`--to`, `target=`, `api_key=`) into a Target."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..config import DEFAULT_TARGET
from ..errors import ConfigError
from .base import Target
from .tus import TusTarget


def resolve_target(
    spec: str | Target | None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    upsert: bool = False,
) -> Target:
    """A Target from, in order: `spec` (a Target, a tus URL, "gemini", `s3://bucket/key`,
    `supabase://bucket/path`); `api_key` alone (Gemini); $UPWELL_TARGET; $GEMINI_API_KEY
    (Gemini); the default local tus endpoint. `upsert` lets a Supabase upload replace an
    existing object (S3 always does)."""
    env = os.environ if env is None else env
    if isinstance(spec, Target):
        return spec
    if spec is None:
        if api_key:
            spec = "gemini"
        elif env.get("UPWELL_TARGET"):
            spec = env["UPWELL_TARGET"]
        elif env.get("GEMINI_API_KEY"):
            spec = "gemini"
        else:
            spec = DEFAULT_TARGET
    if spec.startswith("s3://"):
        from ..aws import AWSSettings
        from .s3 import S3Target

        return S3Target(spec, AWSSettings.from_env(env))
    if spec.startswith("supabase://"):
        from .supabase import SupabaseTarget

        return SupabaseTarget.from_env(spec, env, upsert=upsert)
    if upsert:
        raise ConfigError("--upsert applies to supabase:// targets (S3 replaces objects anyway)")
    if spec == "gemini":
        return _gemini(api_key, env)
    parts = urlsplit(spec)
    if parts.scheme in ("http", "https") and parts.netloc:
        return TusTarget(spec)
    raise ConfigError(
        f"target {spec!r} is not understood: use an http(s):// tus endpoint URL, 'gemini', "
        "s3://bucket/key or supabase://bucket/path"
    )


def _gemini(api_key: str | None, env: Mapping[str, str]) -> Target:
    """The Gemini Files API: key from `api_key` or $GEMINI_API_KEY; base URL from
    $GEMINI_BASE_URL, then the official SDK's $GOOGLE_GEMINI_BASE_URL; API version from
    $GEMINI_API_VERSION (default v1beta)."""
    from .gemini import DEFAULT_API_VERSION, DEFAULT_BASE_URL, GeminiTarget

    key = api_key or env.get("GEMINI_API_KEY", "")
    if not key.strip():
        raise ConfigError("the Gemini target needs an API key: set GEMINI_API_KEY or pass api_key=")
    base = env.get("GEMINI_BASE_URL") or env.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
    version = env.get("GEMINI_API_VERSION") or DEFAULT_API_VERSION
    return GeminiTarget(key, base, version)
