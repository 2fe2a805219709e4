"""A real `upwell serve`, Debian's chromium driven by Playwright, and a gate that holds PATCHes.

"Mid-upload" is made exact without sleeps: the page sends small chunks (`?chunk=`), and the gate
holds every PATCH the test asks it to until the test lets it go (or the page aborts it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[peers.Server]:
    with serve(tmp_path) as server:
        yield server


@contextlib.contextmanager
def serve(tmp_path: Path, *extra: str) -> Iterator[peers.Server]:
    """`upwell serve` as a process of its own, with `extra` arguments, logging to a file."""
    port = peers.free_port()
    data_dir = tmp_path / "upwell-data"
    argv = [*peers.upwell_serve_argv(port, data_dir), *extra]
    log = tmp_path / "upwell-serve.log"
    with peers.run_server("upwell serve", argv, port=port, data_dir=data_dir, log=log) as server:
        yield server


def origin(server: peers.Server) -> str:
    return server.url.removesuffix("/files/")


@dataclass
class PatchGate:
    """Sees every PATCH the browser sends to the tus endpoint; holds those `hold` says to."""

    hold: Callable[[Request], bool] = lambda request: False
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
        route.continue_()

    def release(self) -> None:
        """Stop holding; let what is held go on (those the page aborted meanwhile are gone)."""
        self.hold = lambda request: False
        held, self.held = self.held, []
        for route, _ in held:
            # The page may have aborted the request meanwhile (pause, reload): nothing to send.
            with contextlib.suppress(Error):
                route.continue_()


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


GEMINI_KEY = "page-test-gemini-key"


@dataclass
class Gateway:
    """`create_app` with forwards and tokens, on a loopback port, run by a thread of its own."""

    origin: str
    data_dir: Path

    @property
    def url(self) -> str:
        return self.origin + "/files/"


@contextlib.contextmanager
def gateway_thread(
    tmp_path: Path,
    *,
    tokens: dict[str, str] | None = None,
    forward_to_gemini: bool = False,
    port: int = 0,
) -> Iterator[Gateway]:
    """The server (and a Gemini emulator to forward into) on their own event loop.

    A thread, not `upwell serve`, because the Playwright sync API owns this thread's loop and
    the settings here (tokens, forwards) are the app's, whatever the CLI spells them as.
    """
    from upwell.emulators.gemini import create_gemini_app
    from upwell.server.app import create_app
    from upwell.server.gateway.forwarding import ForwardTarget
    from upwell.server.runner import running_server
    from upwell.server.settings import ServerSettings
    from upwell.serving import running_app
    from upwell.targets.gemini import GeminiTarget

    started = threading.Event()
    box: dict[str, Any] = {}
    data_dir = tmp_path / "gateway-data"

    async def main() -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                forwards = ()
                if forward_to_gemini:
                    emulator = create_gemini_app(tmp_path / "gemini-data", api_key=GEMINI_KEY)
                    base = await stack.enter_async_context(
                        running_app(emulator, peers.HOST, 0, shutdown_timeout=5)
                    )
                    target = GeminiTarget(GEMINI_KEY, base, "v1beta")
                    forwards = (ForwardTarget("gemini", target),)
                settings = ServerSettings(
                    host=peers.HOST, port=port, data_dir=data_dir, tokens=tokens or {}
                )
                app = create_app(settings, forwards=forwards)
                url = await stack.enter_async_context(running_server(settings, app))
                box["stop"] = asyncio.Event()
                box["loop"] = asyncio.get_running_loop()
                box["url"] = url
                started.set()
                await box["stop"].wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="page-gateway")
    thread.start()
    try:
        if not started.wait(WAIT_TIMEOUT) or "error" in box:
            raise RuntimeError(f"the gateway did not start: {box.get('error')!r}")
        yield Gateway(box["url"].removesuffix("/files/"), data_dir)
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(WAIT_TIMEOUT)


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
