"""The one place upwell makes AWS clients (aiobotocore), for the S3 target and the server's S3
storage alike.

Credentials come from the standard AWS chain (environment, shared files, SSO, container and
instance roles), the endpoint from `AWS_ENDPOINT_URL` (then `AWS_ENDPOINT_URL_S3`), the region
from `AWS_REGION` or `AWS_DEFAULT_REGION`, as boto3 reads them. botocore reads its JSON models
and the shared config files from disk when a client is made, so that part runs in a thread:
the event loop never waits on a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AWSSettings:
    """Where S3 is and how to reach it; never holds a secret (the chain resolves those)."""

    endpoint_url: str | None = None
    region: str | None = None
    max_connections: int = 16
    connect_timeout: float = 30.0
    read_timeout: float = 300.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AWSSettings:
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        return cls(endpoint_url=endpoint, region=region, **overrides)


def check_installed() -> None:
    """ConfigError (a usage error) when the `s3` extra is missing, before any work starts."""
    import importlib.util

    if importlib.util.find_spec("aiobotocore") is None:
        raise ConfigError("S3 needs aiobotocore: pip install 'upwell[s3]' (or 'upwell[all]')")


def _require_aiobotocore() -> Any:
    try:
        import aiobotocore.session
    except ImportError:
        raise ConfigError(
            "S3 needs aiobotocore: pip install 'upwell[s3]' (or 'upwell[all]')"
        ) from None
    return aiobotocore.session


def _prepared_session() -> Any:
    """An aiobotocore session whose files are already read (runs in a thread)."""
    session = _require_aiobotocore().get_session()
    session.full_config  # noqa: B018 - reads ~/.aws/config now, not on the event loop
    loader = session.get_component("data_loader")
    # The loader caches by call signature: warm it with the calls client creation makes.
    for version in (None, "2006-03-01"):
        loader.load_service_model("s3", type_name="service-2", api_version=version)
        loader.load_service_model("s3", "endpoint-rule-set-1", api_version=version)
    for name in ("endpoints", "sdk-default-configuration", "_retry", "partitions"):
        with contextlib.suppress(Exception):
            loader.load_data(name)
    return session


@contextlib.asynccontextmanager
async def s3_client(settings: AWSSettings | None = None) -> AsyncIterator[Any]:
    """An aiobotocore S3 client, closed on exit."""
    settings = settings or AWSSettings.from_env()
    session = await asyncio.to_thread(_prepared_session)
    from aiobotocore.config import AioConfig

    config = AioConfig(
        max_pool_connections=settings.max_connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        signature_version="s3v4",
        # Path-style addressing works with every S3 compatible (MinIO, moto, R2, Supabase);
        # AWS itself is left to choose.
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with session.create_client(
        "s3",
        region_name=settings.region or DEFAULT_REGION,
        endpoint_url=settings.endpoint_url,
        config=config,
    ) as client:
        yield client
