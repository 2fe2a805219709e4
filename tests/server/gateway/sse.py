"""A small Server-Sent Events reader over an aiohttp response (what a browser's fetch does)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse


@dataclass
class Message:
    id: str | None
    event: str
    data: Any
    comment: bool = False


async def next_message(resp: ClientResponse) -> Message:
    """The next message or comment (a heartbeat) of the stream."""
    fields: dict[str, str] = {}
    comment = None
    while True:
        raw = await resp.content.readline()
        if raw == b"":
            raise EOFError("the stream ended")
        line = raw.decode().rstrip("\n")
        if line == "":
            if comment is not None and not fields:
                return Message(None, "", comment, comment=True)
            if fields:
                return Message(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
            continue
        if line.startswith(":"):
            comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        assert name not in fields, f"{name} twice in one message"
        fields[name] = value.lstrip(" ")


async def until(resp: ClientResponse, predicate: Any, limit: int = 10_000) -> list[Message]:
    """Messages up to and including the first that satisfies `predicate` (bounded)."""
    seen = []
    for _ in range(limit):
        message = await next_message(resp)
        seen.append(message)
        if not message.comment and predicate(message):
            return seen
    raise AssertionError(f"no matching message in {limit}")
