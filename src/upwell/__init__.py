"""upwell: move large files to AI providers' file APIs, object storage and tus servers.

Chunked, parallel where the protocol allows, resumable, verified, observable. This module is
the promise: everything else may move.
"""

import importlib
import logging
from typing import TYPE_CHECKING

from .config import Limits, Settings, parse_rate, parse_size
from .errors import (
    ConfigError,
    FileChangedError,
    IntegrityError,
    ProtocolError,
    SessionError,
    SourceError,
    TargetError,
    UploadCancelled,
    UploadGone,
    UpwellError,
)

if TYPE_CHECKING:
    from .engine.throttle import AdaptiveBandwidthThrottle, BandwidthThrottle
    from .progress import ProgressTracker, UploadProgress
    from .results import ChunkMetadata, UploadResult
    from .sessions.manager import SessionManager
    from .sessions.session import UploadSession
    from .targets.base import Target
    from .targets.capabilities import Capabilities
    from .targets.gemini import GeminiTarget
    from .targets.tus import TusTarget
    from .uploaders import ChunkedUploader, ParallelUploader, ResumableUploader

__version__ = "0.1.0"

# The library never prints: its records (retries, resumes) go nowhere unless the caller
# configures logging (the CLI does with -v).
logging.getLogger("upwell").addHandler(logging.NullHandler())

__all__ = [
    "AdaptiveBandwidthThrottle",
    "BandwidthThrottle",
    "Capabilities",
    "ChunkMetadata",
    "ChunkedUploader",
    "ConfigError",
    "FileChangedError",
    "GeminiTarget",
    "IntegrityError",
    "Limits",
    "ParallelUploader",
    "ProgressTracker",
    "ProtocolError",
    "ResumableUploader",
    "SessionError",
    "SessionManager",
    "Settings",
    "SourceError",
    "Target",
    "TargetError",
    "TusTarget",
    "UploadCancelled",
    "UploadGone",
    "UploadProgress",
    "UploadResult",
    "UploadSession",
    "UpwellError",
    "__version__",
    "parse_rate",
    "parse_size",
]

# Imported at first use, so `import upwell` (and the CLI, which imports it first) costs no
# aiohttp, SQLite or Gemini code until a name that needs them is asked for.
_LAZY = {
    "AdaptiveBandwidthThrottle": ".engine.throttle",
    "BandwidthThrottle": ".engine.throttle",
    "Capabilities": ".targets.capabilities",
    "ChunkMetadata": ".results",
    "ChunkedUploader": ".uploaders",
    "GeminiTarget": ".targets.gemini",
    "ParallelUploader": ".uploaders",
    "ProgressTracker": ".progress",
    "ResumableUploader": ".uploaders",
    "SessionManager": ".sessions.manager",
    "Target": ".targets.base",
    "TusTarget": ".targets.tus",
    "UploadProgress": ".progress",
    "UploadResult": ".results",
    "UploadSession": ".sessions.session",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
