"""The interface every target implements; the engine drives it and never names a provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..engine.planner import Part, Plan
from ..engine.reader import FileSlices
from ..errors import ConfigError
from .capabilities import Capabilities


@dataclass(frozen=True)
class SourceInfo:
    """What a target may know of the file: never its path on disk."""

    name: str
    size: int
    mime_type: str
    display_name: str


@dataclass(frozen=True)
class Body:
    """A request body streamed from disk: `size` bytes of the file from `stream`, with their
    digests. With an `encoding` ("gzip") the stream carries the encoded bytes, whose length is
    unknown until sent; `size` and the digests still describe the decoded bytes."""

    offset: int
    size: int
    stream: FileSlices
    digests: dict[str, bytes] = field(default_factory=dict)
    encoding: str | None = None
    #: On the request that ends a part: the SHA-256 of the whole part as the file holds it,
    #: for a target that can compare it with what it stored (None: not known).
    part_sha256: bytes | None = None


@dataclass(frozen=True)
class RemoteFile:
    """The finished upload as the target names it."""

    uri: str
    name: str
    size: int
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-ready view for programs and people (`upwell files --json`, MCP)."""
        return {
            "name": self.name,
            "uri": self.uri,
            "size": self.size,
            "sha256": self.sha256,
            **self.extra,
        }


class RemoteUpload(ABC):
    """One file's upload at a target. Methods raise TargetError (retryable or not)."""

    #: Where the upload says what the target is doing while the engine waits on it (e.g.
    #: "the service is processing the file"); the engine puts it into the progress stream.
    reporter: Callable[[str], None] | None = None

    def report(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter(message)

    @abstractmethod
    async def create(self) -> None:
        """Make the remote upload(s) exist; a no-op when resuming."""

    @abstractmethod
    async def part_offset(self, part: Part) -> int:
        """How many bytes of `part` the target holds (the truth after any error)."""

    @abstractmethod
    async def send(self, part: Part, body: Body) -> int:
        """Send `body` into `part` at `body.offset`; returns the part's confirmed offset."""

    @abstractmethod
    async def finish(self) -> RemoteFile:
        """Assemble and return the finished file."""

    @abstractmethod
    async def abort(self) -> None:
        """End the remote upload and free what it holds, where the protocol allows."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """JSON-ready state that lets a later process resume (upload URLs, part ids)."""

    def file_digests(self, digests: dict[str, bytes]) -> None:  # noqa: B027
        """Before `finish`: the whole file's digests that `Capabilities.file_digests` asked
        for (md5 for OpenAI's Uploads API); ignored by targets that ask for none."""


class Target(ABC):
    """A destination: discovers its capabilities once, then makes RemoteUploads."""

    #: Short name for messages and sessions ("tus", "gemini", ...).
    kind: str = "target"

    @property
    @abstractmethod
    def url(self) -> str:
        """Where uploads go; part of the resume key, never carries a secret."""

    @abstractmethod
    async def open(self, http: aiohttp.ClientSession) -> Capabilities:
        """Discover what the target can do (cached after the first call)."""

    async def close(self) -> None:
        """Release what `open` acquired besides the shared HTTP pool (an SDK client); the
        target opens again on next use."""
        return None

    async def still_has(self, http: aiohttp.ClientSession, file: RemoteFile) -> bool:
        """Whether a file an earlier run finished is still at the target (so a repeated upload
        can be skipped); targets that cannot tell say yes."""
        return True

    @abstractmethod
    def new_upload(
        self,
        http: aiohttp.ClientSession,
        source: SourceInfo,
        plan: Plan,
        state: dict[str, Any] | None = None,
    ) -> RemoteUpload:
        """A RemoteUpload for this file, resumed from `state` when given."""


class FileService(ABC):
    """What a target whose provider keeps files offers besides uploads (`upwell files`, MCP).

    `name` is the provider's own id (`files/abc` at Gemini, `file-abc` at OpenAI) or, where
    the provider has one, its URI. Methods raise TargetError (HTTP failures, a missing file)
    or ConfigError (a malformed name)."""

    @abstractmethod
    def list_files(
        self, http: aiohttp.ClientSession, page_size: int = 100
    ) -> AsyncIterator[RemoteFile]:
        """Every file the key can see, asked for `page_size` at a time where the API pages."""

    @abstractmethod
    async def get_file(self, http: aiohttp.ClientSession, name: str) -> RemoteFile:
        """The file `name`."""

    @abstractmethod
    async def delete_file(self, http: aiohttp.ClientSession, name: str) -> None:
        """Delete the file `name`."""

    async def file_content(self, http: aiohttp.ClientSession, name: str) -> str:
        """The text the provider extracted from file `name`; a ConfigError where it has none."""
        raise ConfigError(f"{getattr(self, 'kind', 'this target')} does not serve file content")
