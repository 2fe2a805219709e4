"""The upwell MCP server: upload tools over the same uploaders, targets and sessions.

Built on the official SDK's `MCPServer` (mcp 2.x). Keys come from the server's environment
only; no tool takes one and no result carries one. Every refusal or failure is a tool result
with `isError: true` and one line an agent can act on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from aiohttp import ClientSession
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..errors import UpwellError
from ..results import UploadResult
from ..sessions.manager import SessionManager, default_session_dir
from ..sessions.session import derive_session_id
from ..sessions.store import check_session_id
from ..targets.base import FileService, Target
from ..targets.http import new_session
from ..targets.resolve import resolve_target
from ..uploaders import ResumableUploader
from .progress import ProgressPacer, paced_notifications
from .roots import AllowedFile, check_file, roots_from_uris

INSTRUCTIONS = (
    "upwell uploads files from this machine to tus servers, AI providers' file APIs (Gemini, "
    "OpenAI, Kimi, GLM) and object storage: chunked, resumable, verified. `to` takes what "
    "`upwell upload --to` takes. Only files under the allowed roots can be read. A cancelled "
    "upload_file resumes when called again with the same path and to."
)

CLEANUP_TIMEOUT = 10.0  # seconds a cancelled upload gets to save its session and close

T = TypeVar("T")


@dataclass(frozen=True)
class McpConfig:
    """What the server may read and where it keeps sessions.

    `roots`: directories files may come from (the first is the base of relative paths).
    `client_roots`: also accept the roots the client offers (stdio: the client is on this
    machine; never over HTTP, where the client's paths are not this server's).
    `env`: where keys, base URLs and upload settings are read (the process environment).
    """

    roots: tuple[Path, ...] = ()
    client_roots: bool = True
    max_size: int | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)


# -- results (each tool's output schema) -------------------------------------------------


class UploadOutcome(BaseModel):
    """What upload_file returns."""

    model_config = ConfigDict(extra="forbid")
    file_name: str | None = Field(description="The target's own id for the file.")
    file_uri: str | None = Field(description="Where the file now lives.")
    sha256: str | None = Field(description="SHA-256 of the bytes sent, hex.")
    size: int = Field(description="File size in bytes.")
    seconds: float = Field(description="How long the upload took.")
    resumed: bool = Field(description="True when an earlier, interrupted upload was continued.")
    session_id: str | None = Field(description="The session; upload_status takes it.")


class SessionEntry(BaseModel):
    """One session, as one line of `upwell sessions list --json`."""

    model_config = ConfigDict(extra="allow")
    session_id: str
    status: str = Field(description="active, paused, complete or failed.")
    progress_percentage: float
    file_path: str
    file_size: int
    chunks_completed: int
    total_chunks: int
    target: str
    file_uri: str | None
    expires_at: str
    error: str | None


class SessionList(BaseModel):
    sessions: list[SessionEntry]


class FileEntry(BaseModel):
    """A file the provider keeps (`upwell files list --json`); providers add fields."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(description="The provider's id; get_file and delete_file take it.")
    uri: str | None = None
    size: int | None = None
    sha256: str | None = None


class FileList(BaseModel):
    files: list[FileEntry]


class Deleted(BaseModel):
    deleted: str = Field(description="The name of the file deleted.")


class FileContent(BaseModel):
    name: str
    content: str = Field(description="The text the provider extracted from the file.")


# -- argument types ------------------------------------------------------------------------

To = Annotated[
    str,
    Field(
        description="Where to: a tus endpoint URL, gemini, openai, kimi, glm, s3://bucket/key or "
        "supabase://bucket/path (what `upwell upload --to` takes)."
    ),
]
Name = Annotated[str, Field(description="The provider's file id, as list_files gives it.")]


class UpwellTools:
    """The tools, over one configuration; `register` adds them to an MCPServer."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.settings = Settings.from_env(config.env)
        self.session_dir = self.settings.session_dir or default_session_dir(dict(config.env))

    def register(self, server: MCPServer[Any]) -> None:
        server.add_tool(self.upload_file)
        server.add_tool(self.list_sessions)
        server.add_tool(self.upload_status)
        server.add_tool(self.list_files)
        server.add_tool(self.get_file)
        server.add_tool(self.delete_file)
        server.add_tool(self.get_file_content)

    # -- helpers ---------------------------------------------------------------------------
    def _target(self, to: str, purpose: str | None = None) -> Target:
        try:
            return resolve_target(to, env=self.config.env, purpose=purpose)
        except UpwellError as exc:
            raise ToolError(str(exc)) from None

    async def _roots(self, ctx: Context[Any, Any]) -> list[Path]:
        roots = list(self.config.roots)
        caps = ctx.client_capabilities
        if self.config.client_roots and caps is not None and caps.roots is not None:
            with warnings.catch_warnings():
                # Deprecated by the 2026-07-28 spec, still what hosts offer today.
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                try:
                    listed = await ctx.session.list_roots()
                except Exception:  # a client that offers roots but cannot list them
                    listed = None
            if listed is not None:
                roots.extend(roots_from_uris(str(r.uri) for r in listed.roots))
        return roots

    async def _allowed(self, path: str, ctx: Context[Any, Any]) -> AllowedFile:
        roots = await self._roots(ctx)
        try:
            return await asyncio.to_thread(check_file, path, roots, self.config.max_size)
        except UpwellError as exc:
            raise ToolError(str(exc)) from None

    async def _files(
        self, to: str, work: Callable[[FileService, ClientSession], Awaitable[T]]
    ) -> T:
        """`work(service, http)` against the files API `to` names (keys from the env)."""
        target = self._target(to)
        if not isinstance(target, FileService):
            raise ToolError(
                f"to={to!r} keeps no files to list or delete; use gemini, openai, kimi or glm"
            )
        try:
            async with new_session(
                connections=4,
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.request_timeout,
            ) as http:
                return await work(target, http)
        except UpwellError as exc:
            raise ToolError(str(exc)) from None

    def _sessions(self, ctx: Context[Any, Any]) -> SessionManager:
        """The caller's sessions: over HTTP with bearer tokens each owner has a directory of
        its own (another owner's sessions are neither listed nor resumed); else the one."""
        owner = _owner_of(ctx)
        if owner is None:
            return SessionManager(self.session_dir)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in owner)[:64]
        digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
        return SessionManager(self.session_dir / "owners" / f"{safe}-{digest}")

    # -- tools -----------------------------------------------------------------------------
    async def upload_file(
        self,
        path: Annotated[
            str, Field(description="The file: absolute, or relative to the first allowed root.")
        ],
        to: To,
        ctx: Context[Any, Any],
        display_name: Annotated[
            str | None, Field(description="The name the target shows (default: the file's).")
        ] = None,
        purpose: Annotated[
            str | None, Field(description="OpenAI-compatible targets: the file's purpose.")
        ] = None,
        session_id: Annotated[
            str | None,
            Field(description="Resume or name this session (default: derived from file and to)."),
        ] = None,
    ) -> UploadOutcome:
        """Upload one file to `to`, resumably, with progress notifications; a cancelled call
        leaves its session paused, and the same call again resumes it."""
        if session_id is not None:
            try:
                check_session_id(session_id)
            except UpwellError as exc:
                raise ToolError(str(exc)) from None
        allowed = await self._allowed(path, ctx)
        target = self._target(to, purpose)
        settings = replace(self.settings, target=target.url)
        uploader = ResumableUploader(
            settings=settings, target=target, session_manager=self._sessions(ctx)
        )
        sid = session_id or derive_session_id(
            allowed.path, allowed.size, allowed.mtime_ns, target.url
        )

        async def work() -> tuple[UploadResult, bool]:
            try:
                earlier = await uploader.resume_session(sid)
                resumed = (
                    earlier is not None
                    and earlier.status != "complete"
                    and bool(earlier.target_state)
                    and earlier.file_path == allowed.path
                    and earlier.file_size == allowed.size
                    and earlier.file_mtime_ns == allowed.mtime_ns
                    and earlier.target == target.url
                )
                pacer = ProgressPacer(allowed.path.name, allowed.size)
                uploader.progress_tracker.add_listener(pacer.observe)
                async with uploader, paced_notifications(pacer, ctx.report_progress) as finish:
                    result = await uploader.upload_file_resumable(
                        allowed.path, session_id=sid, display_name=display_name
                    )
                    if result.success:
                        await finish()
                return result, resumed
            finally:
                await uploader.session_manager.close()

        started = time.monotonic()
        try:
            result, resumed = await _detached(work())
        except UpwellError as exc:
            raise ToolError(str(exc)) from None
        if not result.success:
            raise ToolError(f"upload of {path} failed: {result.error}")
        return UploadOutcome(
            file_name=result.file_name,
            file_uri=result.file_uri,
            sha256=result.sha256,
            size=result.total_size,
            seconds=round(result.upload_duration or (time.monotonic() - started), 3),
            resumed=resumed,
            session_id=result.session_id or sid,
        )

    async def list_sessions(self, ctx: Context[Any, Any]) -> SessionList:
        """Every upload session (finished ones stay listed until they expire)."""
        manager = self._sessions(ctx)
        try:
            found = await manager.list_sessions()
        except UpwellError as exc:
            raise ToolError(str(exc)) from None
        finally:
            await manager.close()
        return SessionList(sessions=[SessionEntry(**s.summary()) for s in found])

    async def upload_status(
        self,
        session_id: Annotated[str, Field(description="As upload_file or list_sessions gave it.")],
        ctx: Context[Any, Any],
    ) -> SessionEntry:
        """One session's status and progress."""
        manager = self._sessions(ctx)
        try:
            session = await manager.load_session(check_session_id(session_id))
        except UpwellError as exc:
            raise ToolError(str(exc)) from None
        finally:
            await manager.close()
        if session is None:
            raise ToolError(f"no session {session_id!r}; list_sessions shows the sessions kept")
        return SessionEntry(**session.summary())

    async def list_files(self, to: To) -> FileList:
        """Every file the provider keeps for this server's key, newest first."""

        async def work(service: FileService, http: ClientSession) -> FileList:
            return FileList(
                files=[FileEntry(**f.summary()) async for f in service.list_files(http)]
            )

        return await self._files(to, work)

    async def get_file(self, to: To, name: Name) -> FileEntry:
        """One file the provider keeps: its size, state and where it lives."""

        async def work(service: FileService, http: ClientSession) -> FileEntry:
            return FileEntry(**(await service.get_file(http, name)).summary())

        return await self._files(to, work)

    async def delete_file(self, to: To, name: Name) -> Deleted:
        """Delete a file the provider keeps."""

        async def work(service: FileService, http: ClientSession) -> Deleted:
            await service.delete_file(http, name)
            return Deleted(deleted=name)

        return await self._files(to, work)

    async def get_file_content(self, to: To, name: Name) -> FileContent:
        """The text the provider extracted from a file (Kimi, GLM)."""

        async def work(service: FileService, http: ClientSession) -> FileContent:
            return FileContent(name=name, content=await service.file_content(http, name))

        return await self._files(to, work)


async def _detached(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` as an asyncio task of its own. The SDK cancels a tool call through anyio,
    which cancels every later await too; the uploader's cleanup (save the session "paused",
    close its connections) is asyncio code that expects one CancelledError, so it gets one."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task], timeout=CLEANUP_TIMEOUT)
        raise


def create_server(config: McpConfig) -> MCPServer[Any]:
    """An MCPServer with upwell's tools; run it over stdio or mount it on `upwell serve`."""
    from .. import __version__

    server: MCPServer[Any] = MCPServer(
        "upwell",
        title="upwell",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    UpwellTools(config).register(server)
    server.middleware.append(_one_line_errors)
    return server


_INVALID = re.compile(r"^(\S[^\n]*)\n  ([^\n]+?) \[type=", re.M)


def _owner_of(ctx: Context[Any, Any]) -> str | None:
    """The bearer token's owner of an HTTP call (set by upwell.mcp.http), None over stdio."""
    try:
        request = ctx.request_context.request
    except (AttributeError, ValueError):
        return None
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    owner = getattr(getattr(user, "access_token", None), "client_id", None)
    return owner if isinstance(owner, str) and owner else None


async def _one_line_errors(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
    """A failed tool call's text as one line an agent can act on: the SDK's argument
    validation errors are pydantic's multi-line reports."""
    result = await call_next(ctx)
    if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
        for block in result.get("content") or ():
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                block["text"] = _one_line(block["text"])
    return result


def _one_line(text: str) -> str:
    if " validation error" in text and "Arguments\n" in text:
        tool = text.split(":", 1)[0].removeprefix("Error executing tool ")
        problems = "; ".join(f"{loc}: {msg}" for loc, msg in _INVALID.findall(text))
        return f"invalid arguments for {tool}: {problems or 'see the input schema'}"
    return " ".join(text.split())
