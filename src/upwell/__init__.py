"""upwell: move large files to AI providers' file APIs, object storage and tus servers.

Chunked, parallel where the protocol allows, resumable, verified, observable. This module is
the promise: everything else may move.
"""

from .config import Limits, Settings, parse_rate, parse_size
from .errors import (
    ConfigError,
    IntegrityError,
    ProtocolError,
    SessionError,
    SourceError,
    TargetError,
    UploadCancelled,
    UpwellError,
)
from .progress import ProgressTracker, UploadProgress
from .results import ChunkMetadata, UploadResult
from .targets.base import Target
from .targets.capabilities import Capabilities
from .targets.tus import TusTarget
from .uploaders import ChunkedUploader, ParallelUploader, ResumableUploader

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "ChunkMetadata",
    "ChunkedUploader",
    "ConfigError",
    "IntegrityError",
    "Limits",
    "ParallelUploader",
    "ProgressTracker",
    "ProtocolError",
    "ResumableUploader",
    "SessionError",
    "Settings",
    "SourceError",
    "Target",
    "TargetError",
    "TusTarget",
    "UploadCancelled",
    "UploadProgress",
    "UploadResult",
    "UpwellError",
    "__version__",
    "parse_rate",
    "parse_size",
]
