"""upwell: move large files to AI providers' file APIs, object storage and tus servers.

Chunked, parallel where the protocol allows, resumable, verified, observable. This module is
the promise: everything else may move.
"""

import logging

from .config import Limits, Settings, parse_rate, parse_size
from .engine.throttle import AdaptiveBandwidthThrottle, BandwidthThrottle
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
