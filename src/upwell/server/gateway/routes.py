"""The catalog over HTTP: GET /uploads, GET|DELETE /uploads/{id}, and the SSE streams
GET /uploads/{id}/events and GET /uploads/events (every upload of the caller's owner)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, get_args

from aiohttp import web

from ...errors import ProtocolError
from ..ids import is_upload_id
from ..keys import SETTINGS, UPLOADS
from ..owners import current_owner
from ..state import ANONYMOUS, UploadStatus
from ..urls import public_origin
from .events import Event, SubscriberLagged
from .keys import GATEWAY, STREAMS
from .records import absolute, record_json

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
_STATUSES = frozenset(get_args(UploadStatus))


def owner_of(request: web.Request) -> str:
    return current_owner.get() or ANONYMOUS


def origin_of(request: web.Request) -> str:
    return public_origin(request, request.app[SETTINGS].trust_proxy)


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info.get("upload_id", "")
    if not is_upload_id(upload_id):
        raise ProtocolError("no such upload", 404)
    return upload_id


def _cursor(created: datetime, upload_id: str) -> str:
    raw = f"{created.timestamp()!r}:{upload_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(value: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        stamp, _, upload_id = raw.partition(":")
        when = datetime.fromtimestamp(float(stamp), UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ProtocolError("cursor is not one this server gave out", 400) from None
    if not is_upload_id(upload_id):
        raise ProtocolError("cursor is not one this server gave out", 400)
    return when, upload_id


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ProtocolError(f"limit must be a whole number from 1 to {MAX_LIMIT}", 400)
    return int(value)


async def list_uploads(request: web.Request) -> web.StreamResponse:
    """GET /uploads?status=&limit=&cursor=: the owner's uploads, newest first."""
    gateway = request.app[GATEWAY]
    status = request.query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise ProtocolError(f"status must be one of {', '.join(sorted(_STATUSES))}", 400)
    limit = _limit(request.query.get("limit"))
    cursor = request.query.get("cursor")
    before = _parse_cursor(cursor) if cursor else None
    now = gateway.now()
    records = await gateway.state.records(
        owner_of(request),
        status=status,  # type: ignore[arg-type]
        limit=limit + 1,
        before=before,
    )
    origin = origin_of(request)
    page = records[:limit]
    following = None
    if len(records) > limit:
        last = page[-1].upload
        following = _cursor(last.created, last.id)
    return web.json_response(
        {
            "uploads": [absolute(record_json(r, now, gateway.base_path), origin) for r in page],
            "next": following,
        },
        headers={"Cache-Control": "no-store"},
    )


async def _own_record(request: web.Request) -> dict[str, Any]:
    gateway = request.app[GATEWAY]
    upload_id = _upload_id(request)
    record = await gateway.state.record(upload_id)
    if record is None or record.upload.owner != owner_of(request):
        raise ProtocolError(f"no upload {upload_id}", 404)
    now = gateway.now()
    return absolute(record_json(record, now, gateway.base_path), origin_of(request))


async def get_upload(request: web.Request) -> web.StreamResponse:
    """GET /uploads/{id}: one record."""
    return web.json_response(await _own_record(request), headers={"Cache-Control": "no-store"})


async def delete_upload(request: web.Request) -> web.StreamResponse:
    """DELETE /uploads/{id}: the bytes, the record and unfinished forwards."""
    upload_id = _upload_id(request)
    await _own_record(request)
    forwarder = request.app[GATEWAY].forwarder
    if forwarder is not None:
        await forwarder.cancel(upload_id)
    await request.app[UPLOADS].terminate(upload_id)
    return web.Response(status=204)


def _sse(event: Event, origin: str) -> bytes:
    data = absolute(event.data, origin) if event.kind == "record" else event.data
    line = json.dumps(data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {line}\n\n".encode()


def _last_event_id(request: web.Request) -> int | None:
    value = request.headers.get("Last-Event-ID", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ProtocolError("Last-Event-ID must be an event id this server sent", 400)
    return int(value)


async def upload_events(request: web.Request) -> web.StreamResponse:
    """GET /uploads/{id}/events: Server-Sent Events of one upload (its record first)."""
    snapshot = await _own_record(request)
    return await _stream(request, _upload_id(request), snapshot)


async def owner_events(request: web.Request) -> web.StreamResponse:
    """GET /uploads/events: Server-Sent Events of every upload of the caller's owner."""
    return await _stream(request, None, None)


async def _stream(
    request: web.Request, upload_id: str | None, snapshot: dict[str, Any] | None
) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    heartbeat = request.app[SETTINGS].heartbeat_seconds
    after = _last_event_id(request)
    origin = origin_of(request)
    streams = request.app[STREAMS]
    task = asyncio.current_task()
    async with gateway.bus.subscribe(owner_of(request), upload_id, after) as subscription:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        if task is not None:
            streams.add(task)
        try:
            if snapshot is not None and after is None:
                # No id: a reconnect resumes from the last real event, not from this.
                line = json.dumps(snapshot, separators=(",", ":"))
                await response.write(f"event: record\ndata: {line}\n\n".encode())
            else:
                await response.write(b": connected\n\n")
            while True:
                try:
                    event = await subscription.next(heartbeat)
                except SubscriberLagged:
                    break  # the client reconnects with Last-Event-ID and replays
                if event is None:
                    await response.write(b": heartbeat\n\n")
                    continue
                await response.write(_sse(event, origin))
                if upload_id is not None and event.data.get("deleted"):
                    break  # nothing more will happen to this upload
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                streams.discard(task)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/uploads", list_uploads)
    app.router.add_get("/uploads/events", owner_events)
    app.router.add_get("/uploads/{upload_id}", get_upload)
    app.router.add_delete("/uploads/{upload_id}", delete_upload)
    app.router.add_get("/uploads/{upload_id}/events", upload_events)
