"""A real `upwell serve`, Debian's chromium driven by Playwright, and a gate that holds PATCHes.

"Mid-upload" is made exact without sleeps: the page sends small chunks (`?chunk=`), and the gate
holds every PATCH the test asks it to until the test lets it go (or the page aborts it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Playwright,
    Request,
    Route,
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
