"""The page's text/event-stream parser (static/events.js), run in chromium on awkward input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from .conftest import Served, serve

pytestmark = pytest.mark.timeout(120)

PARSE = """async (chunks) => {
    const { EventStreamParser } = await import("/static/events.js");
    const parser = new EventStreamParser();
    const messages = chunks.flatMap((chunk) => parser.feed(chunk));
    return { messages, lastEventId: parser.lastEventId };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module: it only serves the page's scripts here."""
    with serve(tmp_path_factory.mktemp("events")) as served:
        yield served


def parse(context: BrowserContext, server: Served, chunks: list[str]) -> Any:
    page = context.new_page()
    page.goto(server.origin + "/")
    return page.evaluate(PARSE, chunks)


STREAM = (
    ": heartbeat\n\n"
    'id: 1\nevent: progress\ndata: {"upload_id": "a", "bytes_uploaded": 5}\n\n'
    'id: 2\r\nevent: record\r\ndata: {"id": "a",\r\ndata: "status": "stored"}\r\n\r\n'
    "data:no space\rid: 3\r\r"
    "event: ignored-without-data\n\n"
)
EXPECTED = [
    {"id": "1", "event": "progress", "data": '{"upload_id": "a", "bytes_uploaded": 5}'},
    {"id": "2", "event": "record", "data": '{"id": "a",\n"status": "stored"}'},
    {"id": "3", "event": "message", "data": "no space"},
]


@pytest.mark.parametrize("split", [len(STREAM), 1, 7], ids=["whole", "bytewise", "by-7"])
def test_messages_come_out_whole_however_the_stream_is_cut(
    context: BrowserContext, server: Served, split: int
) -> None:
    chunks = [STREAM[i : i + split] for i in range(0, len(STREAM), split)]
    result = parse(context, server, chunks)
    assert result == {"messages": EXPECTED, "lastEventId": "3"}


def test_an_unfinished_message_is_held_back_until_its_blank_line(
    context: BrowserContext, server: Served
) -> None:
    result = parse(context, server, ["id: 9\ndata: half", "\n"])
    assert result == {"messages": [], "lastEventId": None}
