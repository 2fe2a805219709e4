"""ServerSettings: every knob of `upwell serve`, built once by the CLI or a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """How the tus server listens, where it keeps uploads, and the bounds it enforces."""

    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port
    data_dir: Path = Path("./upwell-data")
    max_size: int | None = None  # largest upload accepted, bytes (Tus-Max-Size)
    expiry: timedelta = timedelta(hours=48)  # an unfinished upload idle this long is dropped
    base_path: str = "/files/"  # the tus creation endpoint; uploads live at base_path + id
    cors_origins: tuple[str, ...] = ("*",)  # browser origins allowed; ("*",) allows any
    cors_max_age: int = 86400  # seconds a browser may cache a preflight answer
    trust_proxy: bool = False  # honour Forwarded / X-Forwarded-Host / X-Forwarded-Proto
    stale_writer_seconds: float = 5.0  # a PATCH silent this long may be taken over
    lock_wait_seconds: float = 1.0  # a PATCH finding the upload busy waits this long, then 423
    cleanup_interval: float = 3600.0  # seconds between sweeps for expired uploads
    write_batch_bytes: int = 1 * MiB  # body bytes gathered before one write to disk
    write_buffer_budget: int = 32 * MiB  # batches of all requests together; shrinks each batch
    read_bufsize: int = 128 * 1024  # socket bytes buffered per connection before pausing
    io_threads: int = 16  # threads doing file I/O (writes, fsync, copies)
    max_field_size: int = 64 * 1024  # longest header value (Upload-Concat lists many URLs)
    max_line_size: int = 8190  # longest request line or header line
    max_headers: int = 128  # most header fields in one request
    # The gateway: auth, limits, events, forwarding.
    tokens: dict[str, str] = field(default_factory=dict, repr=False)  # token -> owner
    max_uploads_per_owner: int | None = None  # upload bodies of one owner in flight at once
    max_bytes_per_owner: int | None = None  # bytes one owner may store
    body_idle_seconds: float = 60.0  # a request body silent this long is cut off
    body_min_rate: int = 1024  # bytes/s a body must average over each rate window (0: off)
    body_rate_window: float = 30.0  # seconds over which body_min_rate is measured
    heartbeat_seconds: float = 15.0  # SSE comment sent when no event came for this long
    forward_attempts: int = 5  # tries of each forward before it is marked failed
    forward_backoff: float = 2.0  # seconds before a forward's second try; doubles after
    forward_concurrency: int = 4  # forwards running at once
    forward_chunk_size: int | None = None  # bytes per request to a forward target (None: auto)
    forward_retries: int | None = None  # retries of one request within a forward attempt
    # MCP tools at /mcp reading files under these directories; None: no /mcp.
    mcp_roots: tuple[Path, ...] | None = None
    state: str = "sqlite"  # "sqlite" (under data_dir) or a postgresql:// URL shared by replicas
    storage: str | None = None  # None: files under data_dir; or s3://bucket/prefix

    def __post_init__(self) -> None:
        if not (self.base_path.startswith("/") and self.base_path.endswith("/")):
            raise ConfigError(f"base_path must start and end with '/', got {self.base_path!r}")
        if self.max_size is not None and self.max_size <= 0:
            raise ConfigError(f"max_size must be positive, got {self.max_size}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.expiry <= timedelta(0):
            raise ConfigError("expiry must be positive")
        if self.lock_wait_seconds < 0:
            raise ConfigError("lock_wait_seconds must not be negative")
        if self.stale_writer_seconds <= 0 or self.cleanup_interval <= 0:
            raise ConfigError("stale_writer_seconds and cleanup_interval must be positive")
        if self.state != "sqlite" and not self.state.startswith(("postgresql://", "postgres://")):
            raise ConfigError("--state must be 'sqlite' or a postgresql:// URL")
        if self.storage is not None and not self.storage.startswith("s3://"):
            raise ConfigError("--storage must be an s3://bucket/prefix URL (default: --data-dir)")
        for name in ("max_uploads_per_owner", "max_bytes_per_owner"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.body_idle_seconds <= 0 or self.body_rate_window <= 0 or self.body_min_rate < 0:
            raise ConfigError("body deadlines must be positive (body_min_rate 0 turns it off)")
        if self.heartbeat_seconds <= 0 or self.forward_backoff < 0:
            raise ConfigError("heartbeat_seconds must be positive, forward_backoff not negative")
        if self.forward_attempts < 1 or self.forward_concurrency < 1:
            raise ConfigError("forward_attempts and forward_concurrency must be at least 1")
        if self.write_batch_bytes < 64 * 1024 or self.io_threads < 1:
            raise ConfigError("write_batch_bytes must be at least 64 KiB and io_threads >= 1")

    @property
    def state_path(self) -> Path:
        return self.data_dir / "upwell.sqlite3"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def forward_sessions_dir(self) -> Path:
        """Where the engine journals how far each forward's bytes got."""
        return self.data_dir / "forwards"
