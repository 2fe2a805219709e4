"""Turn what a user wrote (`--to`, `target=`, `api_key=`) into a Target."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..config import DEFAULT_TARGET, parse_size
from ..errors import ConfigError
from .base import Target
from .tus import TusTarget

OPENAI_COMPATIBLE = ("openai", "kimi", "glm")


def resolve_target(
    spec: str | Target | None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    purpose: str | None = None,
    multipart: bool | None = None,
    upsert: bool = False,
) -> Target:
    """A Target from, in order: `spec` (a Target, a tus URL, "gemini", "openai", "kimi",
    "glm", `s3://bucket/key`, `supabase://bucket/path`); `api_key` alone (Gemini);
    $UPWELL_TARGET; $GEMINI_API_KEY (Gemini); the default local tus endpoint. `purpose` and
    `multipart` apply to the OpenAI-compatible ones; `upsert` lets a Supabase upload replace
    an existing object (S3 always does)."""
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
    if isinstance(spec, str) and spec in OPENAI_COMPATIBLE:
        if upsert:
            raise ConfigError("--upsert applies to supabase:// targets")
        return _openai_compatible(spec, api_key, env, purpose, multipart)
    if purpose is not None or multipart:
        raise ConfigError(f"--purpose and --multipart apply to {', '.join(OPENAI_COMPATIBLE)}")
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
        preset = _preset_at(spec, env)
        if preset is not None:
            return _openai_compatible(preset, api_key, env, None, None)
        return TusTarget(spec)
    if parts.scheme in ("ietf+http", "ietf+https") and parts.netloc:
        from .ietf import IetfTarget  # the IETF resumable-upload draft

        return IetfTarget(spec.removeprefix("ietf+"))
    raise ConfigError(
        f"target {spec!r} is not understood: use an http(s):// tus endpoint URL, an "
        "ietf+http(s):// URL (IETF resumable uploads), 'gemini', 'openai', 'kimi', 'glm', "
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


def _openai_compatible(
    name: str,
    api_key: str | None,
    env: Mapping[str, str],
    purpose: str | None,
    multipart: bool | None,
) -> Target:
    """OpenAI, Kimi or GLM: key from `api_key` or the preset's variable ($OPENAI_API_KEY,
    $MOONSHOT_API_KEY, $ZHIPUAI_API_KEY); base URL from $OPENAI_BASE_URL, $MOONSHOT_BASE_URL,
    $ZHIPUAI_BASE_URL (each preset's default otherwise); the largest file sent as one request
    from $UPWELL_FILES_MAX_SIZE (default: the provider's documented limit)."""
    from ..protocols.openai_files import PRESETS
    from .openai import OpenAITarget

    preset = PRESETS[name]
    key = api_key or env.get(preset.key_env, "")
    if not key.strip():
        raise ConfigError(f"the {name} target needs an API key: set {preset.key_env}")
    base = env.get(preset.base_env) or preset.default_base
    limit = env.get("UPWELL_FILES_MAX_SIZE")
    max_file_size = parse_size(limit, what="UPWELL_FILES_MAX_SIZE") if limit else None
    return OpenAITarget(
        key, preset, base, purpose=purpose, multipart=multipart, max_file_size=max_file_size
    )


def _preset_at(url: str, env: Mapping[str, str]) -> str | None:
    """The OpenAI-compatible preset whose files URL (from the environment) `url` is, when its
    key is set: what a session recorded as its target (`sessions rm` ends its Upload)."""
    from ..protocols.openai_files import PRESETS

    for name, preset in PRESETS.items():
        base = (env.get(preset.base_env) or preset.default_base).rstrip("/")
        if url.rstrip("/") == f"{base}/files" and env.get(preset.key_env, "").strip():
            return name
    return None
