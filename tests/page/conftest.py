"""A real `upwell serve`, Debian's chromium driven by Playwright, and a gate that holds PATCHes.

"Mid-upload" is made exact without sleeps: the page sends small chunks (`?chunk=`), and the gate
holds every PATCH the test asks it to until the test lets it go (or the page aborts it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Playwright,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.interop import peers
from tests.support.processes import wait_http_ok

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHUNK = 256 * 1024
GEMINI_KEY = "page-test-gemini-key"
WAIT_TIMEOUT = 30.0  # seconds any condition in the browser may take to come true
expect.set_options(timeout=WAIT_TIMEOUT * 1000)


# Module scope, not session: the sync API keeps an event loop running in this thread while it is
# open, and the async tests of other folders need the thread's loop to themselves.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)"
        if peers.in_ci():
            pytest.fail(f"browser missing in CI (CI=true): {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: its own localStorage and sessionStorage."""
    context = browser.new_context()
    context.set_default_timeout(WAIT_TIMEOUT * 1000)
    yield context
    context.close()


@dataclass(frozen=True)
class Served:
    """A running `upwell serve`: its origin (the page is at origin + "/") and tus endpoint."""

    origin: str
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return self.origin + "/files/"


@contextlib.contextmanager
def process(
    argv: list[str], ready: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process of ours (output appended to `log`), once GET `ready` answers 200."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    try:
        wait_http_ok(ready, proc)
        yield proc
    finally:
        peers.stop(proc)


@contextlib.contextmanager
def serve(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Served]:
    """`upwell serve` with `extra` arguments as a process of its own, logging to a file."""
    port = port or peers.free_port()
    data_dir = tmp_path / "upwell-data"
    log = tmp_path / "upwell-serve.log"
    argv = [*peers.upwell_serve_argv(port, data_dir), *extra]
    origin = f"http://{peers.HOST}:{port}"
    with process(argv, origin + "/healthz", log, env):
        yield Served(origin, data_dir, log)


@contextlib.contextmanager
def gemini_emulator(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`upwell emulate gemini`; yields the environment that points `--forward gemini` at it."""
    port = peers.free_port()
    url = f"http://{peers.HOST}:{port}"
    argv = [str(peers.upwell_binary()), "emulate", "gemini", "--host", peers.HOST,
            "--port", str(port), "--data-dir", str(tmp_path / "gemini-data")]  # fmt: skip
    with process(argv, f"{url}/v1beta/files?key={GEMINI_KEY}", tmp_path / "gemini.log"):
        yield {"GEMINI_BASE_URL": url, "GEMINI_API_KEY": GEMINI_KEY}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as served:
        yield served


@dataclass
class PatchGate:
    """Sees every PATCH the browser sends to the tus endpoint; holds those `hold` says to."""

    hold: Callable[[Request], bool] = lambda request: False
    #: PATCHes to send on with one byte of their body flipped (a link that corrupts data).
    corrupt: Callable[[Request], bool] = lambda request: False
    held: list[tuple[Route, Request]] = field(default_factory=list)
    #: (upload URL, Upload-Offset) of every PATCH the browser sent, in order.
    patches: list[tuple[str, int]] = field(default_factory=list)

    def attach(self, target: Page | BrowserContext, endpoint: str) -> None:
        target.route(endpoint + "**", self._handle)

    def _handle(self, route: Route, request: Request) -> None:
        if request.method == "PATCH":
            self.patches.append((request.url, int(request.headers["upload-offset"])))
            if self.hold(request):
                self.held.append((route, request))
                return
            if self.corrupt(request):
                body = bytearray(request.post_data_buffer or b"")
                body[len(body) // 2] ^= 0xFF
                route.continue_(post_data=bytes(body))
                return
        route.continue_()

    def release(self) -> None:
        """Stop holding; let what is held go on (those the page aborted meanwhile are gone)."""
        self.hold = lambda request: False
        held, self.held = self.held, []
        for route, _ in held:
            # The page may have aborted the request meanwhile (pause, reload): nothing to send.
            with contextlib.suppress(Error):
                route.continue_()


def open_page(context: BrowserContext, server: Served, gate: PatchGate) -> Page:
    """The page in a new tab, its PATCHes through `gate`, small chunks, its script running."""
    page = context.new_page()
    gate.attach(page, server.url)
    page.goto(f"{server.origin}/?chunk={CHUNK}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def hold_from(offset: int) -> Callable[[Request], bool]:
    """Hold each PATCH that starts at or past `offset`."""
    return lambda request: int(request.headers["upload-offset"]) >= offset


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (bounded) while Playwright keeps dispatching the browser's events."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(20)


def write_file(path: Path, size: int) -> Path:
    return peers.write_random_file(path, size)


def served_bytes(url: str, dest: Path) -> bytes:
    return peers.fetch(url, dest).read_bytes()


def tus_upload(endpoint: str, data: bytes, filename: str, token: str | None = None) -> str:
    """Create and finish an upload from outside the browser (urllib); returns its URL."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    name = base64.b64encode(filename.encode()).decode()
    create = urllib.request.Request(
        endpoint,
        method="POST",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
                 "Upload-Metadata": f"filename {name}", **auth},
    )  # fmt: skip
    with urllib.request.urlopen(create, timeout=10) as resp:
        url = urllib.parse.urljoin(endpoint, resp.headers["Location"])
    patch = urllib.request.Request(
        url,
        data=data,
        method="PATCH",
        headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream", **auth},
    )  # fmt: skip
    with urllib.request.urlopen(patch, timeout=10) as resp:
        assert resp.status == 204
    return url


def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())
