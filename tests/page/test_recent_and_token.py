"""The recent-uploads list (GET /uploads, then GET /uploads/events read with fetch) and the
token prompt, in chromium against `upwell serve` (with tokens, or forwarding to `upwell emulate
gemini`) as processes of their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.interop import peers

from .conftest import (
    CHUNK,
    PatchGate,
    Served,
    gemini_emulator,
    get_json,
    hold_from,
    open_page,
    serve,
    served_bytes,
    tus_upload,
    wait_until,
    write_file,
)

pytestmark = pytest.mark.timeout(180)

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"


@pytest.fixture
def forwarding_gateway(tmp_path: Path) -> Iterator[Served]:
    """`upwell serve --forward gemini` beside `upwell emulate gemini`."""
    with gemini_emulator(tmp_path) as env, serve(tmp_path, "--forward", "gemini", env=env) as s:
        yield s


@pytest.fixture
def guarded_gateway(tmp_path: Path) -> Iterator[Served]:
    """`upwell serve --tokens-file` with two owners."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE} alice\n{BOB} bob\n")
    with serve(tmp_path, "--tokens-file", str(tokens)) as served:
        yield served


def record(page: Page, upload_url: str) -> Locator:
    return page.locator(f'#recent li[data-id="{upload_url.rsplit("/", 1)[1]}"]')


def test_recent_uploads_update_live_with_status_and_the_forward_to_gemini(
    context: BrowserContext, forwarding_gateway: Served, tmp_path: Path
) -> None:
    gateway = forwarding_gateway
    earlier = tus_upload(gateway.url, b"uploaded before the page opened", "earlier.txt")
    wait_until_forwarded(gateway, earlier)
    source = write_file(tmp_path / "clip.bin", 6 * CHUNK)
    gate = PatchGate(hold=hold_from(3 * CHUNK))
    page = open_page(context, gateway, gate)
    page.set_viewport_size({"width": 1000, "height": 800})
    expect(page.locator("#recent")).to_have_attribute("data-live", "true")
    expect(record(page, earlier)).to_have_attribute("data-status", "forwarded")

    page.set_input_files("#picker", str(source))
    wait_until(page, lambda: len(gate.held) == 1, "the fourth PATCH to be held")
    url = page.locator('li.transfer[data-name="clip.bin"]').get_attribute("data-url")
    assert url is not None
    item = record(page, url)
    expect(item).to_have_attribute("data-status", "receiving")  # came in as an event
    expect(item.locator(".name")).to_have_text("clip.bin")
    expect(item.locator(".record-meta")).to_contain_text("50% received")
    expect(page.locator("#recent li.record").first).to_have_attribute("data-id", item_id(url))
    page.screenshot(path=tmp_path / "page.png", full_page=True)  # what docs/page.png shows
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    gate.release()
    expect(item).to_have_attribute("data-status", "forwarded")
    forward = item.locator('li.forward[data-target="gemini"]')
    expect(forward).to_have_attribute("data-state", "done")
    catalog = get_json(f"{gateway.origin}/uploads/{item_id(url)}")
    file_name = catalog["forwards"][0]["file_name"]
    assert file_name.startswith("files/")
    expect(forward).to_have_text(f"gemini: done — {file_name}")
    assert served_bytes(url, tmp_path / "served") == source.read_bytes()

    # An upload from another client shows up too, with no reload.
    other = tus_upload(gateway.url, b"from curl, say", "other.txt")
    expect(record(page, other)).to_have_attribute("data-status", "forwarded")
    expect(page.locator("#recent li.record").first).to_have_attribute("data-id", item_id(other))


def item_id(upload_url: str) -> str:
    return upload_url.rsplit("/", 1)[1]


def wait_until_forwarded(gateway: Served, upload_url: str) -> None:
    deadline = time.monotonic() + 30
    while get_json(f"{gateway.origin}/uploads/{item_id(upload_url)}")["status"] != "forwarded":
        assert time.monotonic() < deadline, "the forward did not finish"
        time.sleep(0.05)  # poll interval, bounded by the deadline


def test_the_page_asks_for_a_token_and_shows_only_that_owners_uploads(
    context: BrowserContext, guarded_gateway: Served, tmp_path: Path
) -> None:
    gateway = guarded_gateway
    bobs = tus_upload(gateway.url, b"bob's file", "bob.txt", token=BOB)
    alices = tus_upload(gateway.url, b"alice's file", "alice.txt", token=ALICE)
    page = open_page(context, gateway, PatchGate())

    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-reason")).to_have_text("This server needs an access token.")
    page.fill("#token", "not-a-token-anyone-has")
    page.keyboard.press("Enter")
    expect(page.locator("#token-reason")).to_contain_text("refused")
    page.fill("#token", ALICE)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Forget token")).to_be_visible()

    expect(record(page, alices)).to_have_attribute("data-status", "stored")
    expect(record(page, bobs)).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('upwell.token')") == ALICE
    assert page.evaluate("Object.values(localStorage).join()").find(ALICE) == -1

    source = write_file(tmp_path / "mine.bin", 2 * CHUNK + 3)
    page.set_input_files("#picker", str(source))
    row = page.locator('li.transfer[data-name="mine.bin"]')
    expect(row).to_have_attribute("data-state", "done")
    url = row.get_attribute("data-url")
    assert url is not None
    expect(record(page, url)).to_have_attribute("data-status", "stored")
    assert get_json(f"{gateway.origin}/uploads/{item_id(url)}", ALICE)["owner"] == "alice"

    # The token lives as long as the tab: a reload keeps it, a new tab asks again.
    page.reload()
    expect(record(page, url)).to_have_attribute("data-status", "stored")
    expect(page.locator("#token-dialog")).to_be_hidden()
    other_tab = open_page(context, gateway, PatchGate())
    expect(other_tab.locator("#token-dialog")).to_be_visible()

    page.get_by_role("button", name="Forget token").click()
    assert page.evaluate("sessionStorage.getItem('upwell.token')") is None
    expect(page.get_by_role("button", name="Forget token")).to_be_hidden()


def test_the_live_list_reconnects_with_last_event_id_after_the_server_restarts(
    context: BrowserContext, tmp_path: Path
) -> None:
    port = peers.free_port()
    streams: list[dict[str, str]] = []
    context.on(
        "request",
        lambda request: (
            streams.append(request.headers) if request.url.endswith("/uploads/events") else None
        ),
    )
    with serve(tmp_path, port=port) as gateway:
        page = open_page(context, gateway, PatchGate())
        live = page.locator("#recent")
        expect(live).to_have_attribute("data-live", "true")
        before = tus_upload(gateway.url, b"before the restart", "before.txt")
        expect(record(page, before)).to_have_attribute("data-status", "stored")
        assert "last-event-id" not in streams[0]
    expect(live).to_have_attribute("data-live", "false")

    with serve(tmp_path, port=port) as gateway:
        expect(live).to_have_attribute("data-live", "true")
        seen = streams[-1].get("last-event-id", "")
        assert seen.isdigit() and int(seen) > 0, streams[-1]
        after = tus_upload(gateway.url, b"after the restart", "after.txt")
        expect(record(page, after)).to_have_attribute("data-status", "stored")
        expect(record(page, before)).to_have_attribute("data-status", "stored")
