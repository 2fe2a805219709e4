"""Uppy (@uppy/core + @uppy/tus, a client no one here wrote) in chromium, into `upwell serve`.

The Uppy page comes from another origin (a loopback server of the test's own), so CORS is
exercised too.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.interop import peers

from .conftest import CHUNK, PatchGate, Served, hold_from, served_bytes, wait_until, write_file

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

UPPY_ENTRY = peers.NODE_DIR / "uppy_page.mjs"
UPPY_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>uppy</title></head>
<body><input id="file" type="file"><script src="/uppy.js"></script></body></html>"""


@pytest.fixture(scope="session")
def uppy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """@uppy/core + @uppy/tus bundled by esbuild for the browser (never shipped, never kept)."""
    esbuild = peers.NODE_DIR / "node_modules" / ".bin" / "esbuild"
    missing = [
        name
        for name in ("@uppy/core", "@uppy/tus", "esbuild")
        if not (peers.NODE_DIR / "node_modules" / name / "package.json").is_file()
    ]
    if missing:
        reason = f"npm packages {missing} missing; run `npm ci --prefix tests/interop/node`"
        if peers.in_ci():
            pytest.fail(f"interop peer missing in CI (CI=true): {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("uppy") / "uppy.js"
    subprocess.run(
        [str(esbuild), str(UPPY_ENTRY), "--bundle", "--format=iife", "--platform=browser",
         "--log-level=warning", f"--outfile={out}"],
        cwd=peers.NODE_DIR, check=True, timeout=120,
    )  # fmt: skip
    return out


@pytest.fixture
def uppy_site(uppy_bundle: Path) -> Iterator[str]:
    """The Uppy page on a loopback HTTP server of the test's own: another origin than upwell's."""
    (uppy_bundle.parent / "index.html").write_text(UPPY_HTML)
    handler = functools.partial(_QuietHandler, directory=str(uppy_bundle.parent))
    with http.server.ThreadingHTTPServer((peers.HOST, 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        # localhost, not 127.0.0.1: a different origin from upwell's (so CORS is exercised),
        # still loopback (so chromium's private-network rules let it reach the server).
        yield f"http://localhost:{site.server_address[1]}"
        site.shutdown()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def open_uppy(context: BrowserContext, site: str, server: Served, gate: PatchGate) -> Page:
    page = context.new_page()
    gate.attach(page, server.url)
    page.goto(f"{site}/?endpoint={server.url}&chunk={CHUNK}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def test_uppy_uploads_into_upwell_serve_and_resumes_after_a_reload(
    context: BrowserContext, uppy_site: str, server: Served, tmp_path: Path
) -> None:
    source = write_file(tmp_path / "uppy.bin", 8 * CHUNK + 99)
    gate = PatchGate(hold=hold_from(3 * CHUNK))
    page = open_uppy(context, uppy_site, server, gate)
    page.set_input_files("#file", str(source))
    wait_until(page, lambda: len(gate.held) == 1, "Uppy's fourth PATCH to be held")
    first_url = gate.held[0][1].url
    assert page.locator("body").get_attribute("data-state") is None  # not finished

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    gate.release()
    sent_before = len(gate.patches)
    page.set_input_files("#file", str(source))
    expect(page.locator("body")).to_have_attribute("data-state", "done")
    assert page.locator("body").get_attribute("data-url") == first_url
    assert gate.patches[sent_before] == (first_url, 3 * CHUNK), "Uppy restarted instead of resuming"
    assert served_bytes(first_url, tmp_path / "served.bin") == source.read_bytes()
