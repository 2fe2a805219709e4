"""One exception hierarchy: callers catch what they mean."""

from __future__ import annotations


class UpwellError(Exception):
    """Root of every error upwell raises on purpose."""


class ConfigError(UpwellError):
    """A setting, argument or environment variable is not usable."""


class SourceError(UpwellError):
    """The file to upload is missing, unreadable, or changed while it was read."""


class FileChangedError(SourceError):
    """The file is not the one an earlier run started uploading."""


class SessionError(UpwellError):
    """An upload session could not be read, written or resumed."""


class IntegrityError(UpwellError):
    """What arrived differs from what was sent (checksum or size mismatch)."""


class ProtocolError(UpwellError):
    """A peer broke the protocol: a header is missing, malformed or out of range.

    `status` is the HTTP status a server answers with (as in h11's error_status_hint).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TargetError(UpwellError):
    """The target refused or failed a request.

    `status` is the HTTP status (None for a connection failure); `retryable` says whether
    the same request may succeed later; `retry_after` is the server's hint in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class UploadGone(TargetError):
    """The target no longer knows an upload an earlier run started (expired, removed): it must
    start over."""


class UploadCancelled(UpwellError):
    """The upload was cancelled by its caller."""
