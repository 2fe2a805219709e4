"""Real processes on loopback: `upwell serve`, @tus/server, and the argv of each tus client.

Shared by tests/interop (pytest) and benchmarks/bench_tus.py, so both start the servers and
clients the same way users do. No pytest here; waits poll with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

INTEROP_DIR = Path(__file__).resolve().parent
REPO = INTEROP_DIR.parents[1]
NODE_DIR = INTEROP_DIR / "node"
TUS_SERVER_JS = NODE_DIR / "tus_server.mjs"
TUS_UPLOAD_JS = NODE_DIR / "tus_upload.mjs"
TUSPY_UPLOAD_PY = INTEROP_DIR / "tuspy_upload.py"
NPM_PEERS = ("tus-js-client", "@tus/server", "@tus/file-store", "@modelcontextprotocol/sdk")
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
TEST_FILE_SIZE = 5 * 1024 * 1024 + 12_345  # a few MiB, not a multiple of TEST_CHUNK
TEST_CHUNK = 1024 * 1024


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def upwell_binary() -> Path:
    """The `upwell` console script of the interpreter running us (the project's venv)."""
    return Path(sys.executable).parent / "upwell"


def missing_node_peers() -> str | None:
    """Why the npm peers cannot run here, or None when node and all of them are installed."""
    if shutil.which("node") is None:
        return "`node` is not on PATH; install Node.js >= 20.19"
    for name in NPM_PEERS:
        if not (NODE_DIR / "node_modules" / name / "package.json").is_file():
            return (
                f"npm package {name} is not installed under {NODE_DIR / 'node_modules'}; "
                f"run `npm ci --prefix {NODE_DIR.relative_to(REPO)}` (as .ci/run does)"
            )
    return None


def npm_peer_version(name: str) -> str:
    manifest = NODE_DIR / "node_modules" / name / "package.json"
    return str(json.loads(manifest.read_text())["version"])


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_random_file(path: Path, size: int) -> Path:
    """`size` bytes from os.urandom, written for real (no holes: sparse files lie about I/O)."""
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 8 << 20)
            f.write(os.urandom(n))
            remaining -= n
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """GET `url` into `dest`, streamed; raises urllib.error.HTTPError on a non-2xx answer."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
    return dest


def sha256_url(url: str, timeout: float = 600.0) -> str:
    """SHA-256 of what GET `url` answers, streamed (nothing is written to disk)."""
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        while block := resp.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def first_difference(a: Path, b: Path) -> str | None:
    """None when the files hold the same bytes, else where and how they first differ."""
    size_a, size_b = a.stat().st_size, b.stat().st_size
    with a.open("rb") as fa, b.open("rb") as fb:
        offset = 0
        while True:
            ba, bb = fa.read(1 << 20), fb.read(1 << 20)
            if ba != bb:
                n = min(len(ba), len(bb))
                i = next((k for k in range(n) if ba[k] != bb[k]), n)
                return (
                    f"{a.name} ({size_a} bytes) and {b.name} ({size_b} bytes) "
                    f"first differ at offset {offset + i}"
                )
            if not ba:
                return None
            offset += len(ba)


@dataclass
class Server:
    """A server process that answered GET /healthz; `url` is its tus endpoint."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_healthy(name: str, proc: subprocess.Popen[bytes], health: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(health, timeout=2) as resp:
                if resp.status == 200:
                    return
                last_error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(POLL_INTERVAL)  # poll interval, bounded by the deadline
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT}s ({last_error}):\n{tail}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not go; always reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def run_server(
    name: str, argv: Sequence[str], *, port: int, data_dir: Path, log: Path
) -> Iterator[Server]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(name, proc, f"http://{HOST}:{port}/healthz", log)
        yield Server(name, proc, f"http://{HOST}:{port}/files/", data_dir, log)
    finally:
        stop(proc)


def upwell_serve_argv(port: int, data_dir: Path) -> list[str]:
    return [
        str(upwell_binary()), "serve", "--host", HOST, "--port", str(port),
        "--data-dir", str(data_dir),
    ]  # fmt: skip


def tus_node_server_argv(port: int, data_dir: Path) -> list[str]:
    return [
        "node", str(TUS_SERVER_JS), "--host", HOST, "--port", str(port),
        "--dir", str(data_dir),
    ]  # fmt: skip


@contextlib.contextmanager
def upwell_serve(data_dir: Path, log: Path) -> Iterator[Server]:
    """`upwell serve` on a free loopback port, ready (GET /healthz answered 200)."""
    port = free_port()
    argv = upwell_serve_argv(port, data_dir)
    with run_server("upwell serve", argv, port=port, data_dir=data_dir, log=log) as server:
        yield server


@contextlib.contextmanager
def tus_node_server(data_dir: Path, log: Path) -> Iterator[Server]:
    """@tus/server with @tus/file-store on a free loopback port, ready."""
    port = free_port()
    argv = tus_node_server_argv(port, data_dir)
    with run_server("@tus/server", argv, port=port, data_dir=data_dir, log=log) as server:
        yield server


def tus_js_upload_argv(
    endpoint: str, path: Path, *, chunk_size: int | None = None, parallel: int = 1
) -> list[str]:
    argv = ["node", str(TUS_UPLOAD_JS), "--endpoint", endpoint, "--file", str(path)]
    if chunk_size is not None:
        argv += ["--chunk-size", str(chunk_size)]
    if parallel > 1:
        argv += ["--parallel", str(parallel)]
    return argv


def tuspy_upload_argv(
    endpoint: str, path: Path, *, chunk_size: int | None = None, checksum: bool = False
) -> list[str]:
    argv = [sys.executable, str(TUSPY_UPLOAD_PY), "--endpoint", endpoint, "--file", str(path)]
    if chunk_size is not None:
        argv += ["--chunk-size", str(chunk_size)]
    if checksum:
        argv.append("--checksum")
    return argv


def upwell_upload_argv(
    endpoint: str, path: Path, *, chunk_size: str | None = None, parallel: int | None = None
) -> list[str]:
    argv = [str(upwell_binary()), "upload", str(path), "--to", endpoint, "--json"]
    if chunk_size is not None:
        argv += ["--chunk-size", chunk_size]
    if parallel is not None:
        argv += ["--parallel", str(parallel)]
    return argv


def curl_create_argv(endpoint: str, size: int) -> list[str]:
    """POST that creates an upload of `size` bytes; prints the Location header's URL."""
    return [
        "curl", "-sS", "--fail-with-body", "-X", "POST", endpoint,
        "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}",
        "-o", "/dev/null", "-w", "%header{location}",
    ]  # fmt: skip


def curl_patch_argv(upload_url: str, path: Path) -> list[str]:
    """One streamed PATCH of the whole file (`curl -T`), as a user without a tus client would."""
    return [
        "curl", "-sS", "--fail-with-body", "-X", "PATCH", "-T", str(path), upload_url,
        "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
        "-H", "Content-Type: application/offset+octet-stream", "-o", "/dev/null",
    ]  # fmt: skip


def client_env(session_dir: Path) -> dict[str, str]:
    """The environment for client processes: nothing from the caller's upwell settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPWELL_", "UPLOAD_"))}
    env["UPLOAD_SESSION_DIR"] = str(session_dir)
    return env


def absolute_upload_url(endpoint: str, location: str) -> str:
    """A Location header may be relative; resolve it against the endpoint."""
    return urllib.parse.urljoin(endpoint, location.strip())


def run_client(
    argv: Sequence[str], env: dict[str, str], timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run a client to completion; output captured as text."""
    return subprocess.run(
        list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def failure_report(result: subprocess.CompletedProcess[str], *servers: Server) -> str:
    """What a person needs when a client failed: its argv, exit status, output, server logs."""
    parts = [
        f"command: {' '.join(map(str, result.args))}",
        f"exit status: {result.returncode}",
        f"stdout (tail):\n{result.stdout[-3000:]}",
        f"stderr (tail):\n{result.stderr[-3000:]}",
    ]
    parts += [f"{s.name} log (tail):\n{s.log_tail()}" for s in servers]
    return "\n".join(parts)


def parse_last_json_line(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output on stdout")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"last stdout line is not a JSON object: {lines[-1]!r}")
    return value
