"""The page at `/` in a real chromium against a real `upwell serve`: tus from the browser."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect

from .conftest import (
    CHUNK,
    PatchGate,
    Served,
    hold_from,
    open_page,
    served_bytes,
    wait_until,
    write_file,
)

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024


def row(page: Page, name: str) -> Locator:
    return page.locator(f'li.transfer[data-name="{name}"]')


def offset_of(page: Page, name: str) -> int:
    value = row(page, name).get_attribute("data-offset")
    return int(value) if value is not None else -1


def assert_served(page: Page, name: str, source: Path, tmp_path: Path) -> None:
    url = row(page, name).get_attribute("data-url")
    assert url is not None
    assert served_bytes(url, tmp_path / f"served-{name}") == source.read_bytes()


def server_offset(url: str) -> int:
    head = urllib.request.Request(url, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(head, timeout=10) as resp:
        return int(resp.headers["Upload-Offset"])


def test_two_files_upload_at_once_and_one_pauses_and_resumes(
    context: BrowserContext, server: Served, tmp_path: Path
) -> None:
    a = write_file(tmp_path / "a.bin", 12 * CHUNK + 777)
    b = write_file(tmp_path / "b.bin", 10 * CHUNK + 5)
    gate = PatchGate(hold=hold_from(4 * CHUNK))
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = open_page(context, server, gate)

    page.set_input_files("#picker", [str(a), str(b)])
    # Both run at once: each reaches 4 chunks and its next PATCH is held.
    wait_until(page, lambda: len(gate.held) == 2, "a PATCH of each file to be held")
    assert offset_of(page, "a.bin") == offset_of(page, "b.bin") == 4 * CHUNK
    expect(row(page, "a.bin")).to_have_attribute("data-state", "uploading")
    speed = row(page, "b.bin").locator(".speed")
    expect(speed).to_contain_text("/s")
    expect(row(page, "b.bin").locator(".eta")).to_contain_text("left")

    page.get_by_role("button", name="Pause b.bin").click()
    expect(row(page, "b.bin")).to_have_attribute("data-state", "paused")
    expect(page.get_by_role("button", name="Resume b.bin")).to_be_focused()
    expect(page.get_by_role("button", name="Pause b.bin")).to_be_hidden()
    b_url = row(page, "b.bin").get_attribute("data-url")
    gate.release()
    expect(row(page, "a.bin")).to_have_attribute("data-state", "done")
    expect(row(page, "a.bin").get_by_role("button")).to_have_count(0)  # none left to press
    assert offset_of(page, "b.bin") == 4 * CHUNK
    assert [o for u, o in gate.patches if u == b_url][-1] == 4 * CHUNK  # nothing sent since

    page.screenshot(path=tmp_path / "page.png", full_page=True)
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    sent_before_resume = len(gate.patches)
    page.get_by_role("button", name="Resume b.bin").click()
    expect(row(page, "b.bin")).to_have_attribute("data-state", "done")
    resumed = [o for u, o in gate.patches[sent_before_resume:] if u == b_url]
    assert resumed[0] == 4 * CHUNK, "resume must go on from the server's offset, not restart"
    assert_served(page, "a.bin", a, tmp_path)
    assert_served(page, "b.bin", b, tmp_path)
    elsewhere = [url for url in requested if not url.startswith(server.origin + "/")]
    assert not elsewhere, "the page must work offline, from its own server only"


@pytest.mark.parametrize("how", ["reload", "new-tab"])
def test_an_upload_cut_off_by_a_reload_or_closed_tab_resumes_when_the_file_is_chosen_again(
    context: BrowserContext, server: Served, tmp_path: Path, how: str
) -> None:
    source = write_file(tmp_path / "movie.bin", 9 * CHUNK + 321)
    gate = PatchGate(hold=hold_from(5 * CHUNK))
    page = open_page(context, server, gate)
    page.set_input_files("#picker", str(source))
    wait_until(page, lambda: len(gate.held) == 1, "the sixth PATCH to be held")
    url = row(page, "movie.bin").get_attribute("data-url")
    assert url is not None
    assert offset_of(page, "movie.bin") == 5 * CHUNK

    if how == "reload":
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
    else:
        # Closing the tab may still let its last held PATCH through: resume from wherever the
        # server says it stands.
        page.close()
        page = open_page(context, server, gate)
    gate.release()
    stood_at = server_offset(url)
    assert 5 * CHUNK <= stood_at < source.stat().st_size
    remembered = page.locator('#remembered li[data-name="movie.bin"]')
    expect(remembered).to_contain_text("55%")

    sent_before = len(gate.patches)
    page.set_input_files("#picker", str(source))
    expect(row(page, "movie.bin")).to_have_attribute("data-state", "done")
    assert row(page, "movie.bin").get_attribute("data-url") == url
    assert row(page, "movie.bin").get_attribute("data-resumed-from") == str(stood_at)
    assert gate.patches[sent_before] == (url, stood_at)
    assert_served(page, "movie.bin", source, tmp_path)
    # Finished uploads are forgotten: a later reload offers nothing to resume.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#remembered li")).to_have_count(0)


def test_cancel_stops_the_upload_and_deletes_it_on_the_server(
    context: BrowserContext, server: Served, tmp_path: Path
) -> None:
    source = write_file(tmp_path / "oops.bin", 6 * CHUNK)
    gate = PatchGate(hold=hold_from(2 * CHUNK))
    page = open_page(context, server, gate)
    page.set_input_files("#picker", str(source))
    wait_until(page, lambda: len(gate.held) == 1, "the third PATCH to be held")
    url = row(page, "oops.bin").get_attribute("data-url")
    assert url is not None

    page.get_by_role("button", name="Cancel oops.bin").click()
    expect(row(page, "oops.bin")).to_have_count(0)
    expect(page.locator("#notice")).to_have_text("Cancelled oops.bin.")
    gate.release()
    head = urllib.request.Request(url, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(head, timeout=10)
    refused.value.close()  # an HTTPError holds its connection open
    assert refused.value.code in (404, 410)
    assert page.evaluate("Object.keys(localStorage).length") == 0


def test_a_dropped_file_uploads_with_its_name_and_type(
    context: BrowserContext, server: Served, tmp_path: Path
) -> None:
    page = open_page(context, server, PatchGate())
    size = 3 * CHUNK + 17
    page.evaluate(
        """(size) => {
            const bytes = new Uint8Array(size).map((_, i) => (i * 7 + 3) % 251);
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "drop é.txt", { type: "text/plain" }));
            const zone = document.querySelector("#drop");
            for (const type of ["dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true }));
            }
        }""",
        size,
    )
    item = row(page, "drop é.txt")
    expect(item).to_have_attribute("data-state", "done")
    url = item.get_attribute("data-url")
    assert url is not None
    expected = bytes((i * 7 + 3) % 251 for i in range(size))
    assert served_bytes(url, tmp_path / "dropped") == expected
    head = urllib.request.Request(url, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(head, timeout=10) as resp:
        metadata = dict(pair.split(" ") for pair in resp.headers["Upload-Metadata"].split(","))
    assert metadata == {"filename": "ZHJvcCDDqS50eHQ=", "filetype": "dGV4dC9wbGFpbg=="}


def test_the_page_works_from_the_keyboard(
    context: BrowserContext, server: Served, tmp_path: Path
) -> None:
    source = write_file(tmp_path / "keys.bin", 6 * CHUNK)
    gate = PatchGate(hold=hold_from(2 * CHUNK))
    page = open_page(context, server, gate)
    for _ in range(10):
        if page.evaluate("document.activeElement?.id") == "picker":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement?.id") == "picker"
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(source))
    wait_until(page, lambda: len(gate.held) == 1, "the third PATCH to be held")

    pause = page.get_by_role("button", name="Pause keys.bin")
    pause.focus()
    page.keyboard.press("Enter")
    expect(row(page, "keys.bin")).to_have_attribute("data-state", "paused")
    gate.release()
    page.keyboard.press("Enter")  # focus moved to Resume
    expect(row(page, "keys.bin")).to_have_attribute("data-state", "done")
    assert_served(page, "keys.bin", source, tmp_path)


def test_the_page_fits_a_phone_screen(browser: Browser, server: Served) -> None:
    phone = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = phone.new_page()
    page.goto(server.origin + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    chooser = page.locator("label[for=picker]")
    box = chooser.bounding_box()
    assert box is not None and box["height"] >= 40  # a thumb can hit it
    phone.close()


@pytest.mark.parametrize(
    ("chunk_seconds", "size", "offsets"),
    [
        # Every PATCH far quicker than the aim: each next one is twice as big.
        (60, 13 * MiB, [0, 4 * MiB, 12 * MiB]),
        # Every PATCH slower than the aim: each next one is half as big.
        (0.0001, 7 * MiB, [0, 4 * MiB, 6 * MiB]),
    ],
    ids=["grows", "shrinks"],
)
def test_without_a_fixed_chunk_size_each_patch_aims_at_a_duration(
    context: BrowserContext,
    server: Served,
    tmp_path: Path,
    chunk_seconds: float,
    size: int,
    offsets: list[int],
) -> None:
    source = write_file(tmp_path / "adaptive.bin", size)
    gate = PatchGate()
    page = context.new_page()
    gate.attach(page, server.url)
    page.goto(f"{server.origin}/?chunk-seconds={chunk_seconds}")
    page.set_input_files("#picker", str(source))
    expect(row(page, "adaptive.bin")).to_have_attribute("data-state", "done")
    assert [offset for _, offset in gate.patches] == offsets
    assert_served(page, "adaptive.bin", source, tmp_path)


def test_each_chunk_carries_its_sha256_and_a_corrupted_one_is_sent_again(
    context: BrowserContext, server: Served, tmp_path: Path
) -> None:
    source = write_file(tmp_path / "fragile.bin", 4 * CHUNK + 1)
    checksums: list[str | None] = []
    corrupted: list[int] = []

    def corrupt_third_once(request: Request) -> bool:
        checksums.append(request.headers.get("upload-checksum"))
        offset = int(request.headers["upload-offset"])
        if offset == 2 * CHUNK and not corrupted:
            corrupted.append(offset)
            return True
        return False

    gate = PatchGate(corrupt=corrupt_third_once)
    page = open_page(context, server, gate)
    page.set_input_files("#picker", str(source))
    expect(row(page, "fragile.bin")).to_have_attribute("data-state", "done")
    assert corrupted == [2 * CHUNK]
    offsets = [offset for _, offset in gate.patches]
    assert offsets == [0, CHUNK, 2 * CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    assert all(c is not None and c.startswith("sha256 ") for c in checksums), checksums
    assert_served(page, "fragile.bin", source, tmp_path)
