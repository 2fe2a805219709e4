"""The tus server against a model: hypothesis drives a real server over HTTP with random
sequences of create / PATCH (with and without checksum, right and wrong offsets, cut bodies) /
HEAD / DELETE / concatenation / expiry, and after every step the server's answers and the
bytes on its disk must be what the model says tus requires.

Bounded and deterministic for CI (derandomize, a fixed number of examples); more examples with
UPWELL_MODEL_EXAMPLES=500. A failure prints the shortest sequence of steps that shows it, and
rerunning the test replays it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.threaded_server import ThreadedServer, threaded_server
from upwell.protocols.tus import parse_expires
from upwell.server.settings import ServerSettings

EXPIRY = timedelta(hours=1)
MAX_UPLOADS = 8
TIMEOUT = 15.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]


def call(
    server: ThreadedServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> Answer:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def cut_patch(
    server: ThreadedServer, path: str, headers: dict[str, str], sent: bytes, declared: int
) -> None:
    """A PATCH announcing `declared` bytes whose connection ends after `sent` (a FIN, so the
    bytes that were sent all arrive); waits for whatever the server answers."""
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {server.host}\r\n{head}"
            f"Content-Length: {declared}\r\n\r\n".encode()
            + sent
        )
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass


@dataclass
class Model:
    """What tus says the server holds for one upload."""

    path: str
    length: int | None
    data: bytearray = field(default_factory=bytearray)
    partial: bool = False
    parts: list[Model] | None = None  # a final upload's parts
    assembled: bool = False
    deleted: bool = False
    expires: datetime | None = None

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def completed(self) -> bool:
        if self.parts is not None:
            return self.assembled
        return self.length is not None and len(self.data) == self.length

    def expired(self, now: datetime) -> bool:
        return not self.completed and self.expires is not None and self.expires <= now

    def gone_part(self, now: datetime) -> bool:
        assert self.parts is not None
        return any(p.deleted or p.expired(now) for p in self.parts)


TUS = {"Tus-Resumable": "1.0.0"}
CHUNKS = st.binary(min_size=0, max_size=48)


class TusModel(RuleBasedStateMachine):
    server: ThreadedServer
    data_dir: Path

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[Model] = []

    # -- helpers ---------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.server.clock.now()

    def pick(self, index: int) -> Model:
        return self.uploads[index % len(self.uploads)]

    def refreshed(self, upload: Model, answer: Answer, since: datetime) -> None:
        """A write was stored at some time since `since`: an unfinished upload now expires
        EXPIRY after it (Upload-Expires carries whole seconds), a complete one never."""
        if upload.completed:
            upload.expires = None
            assert "upload-expires" not in answer.headers, answer
            return
        expires = parse_expires(answer.headers.get("upload-expires"))
        assert expires is not None, answer
        earliest = since + EXPIRY - timedelta(seconds=1)
        assert earliest <= expires <= self.now() + EXPIRY, (since, expires, answer)
        upload.expires = expires

    def assemble_finals(self) -> None:
        for final in self.uploads:
            if final.parts is None or final.assembled or final.gone_part(self.now()):
                continue
            if all(p.completed for p in final.parts):
                final.assembled = True
                final.data = bytearray(b"".join(bytes(p.data) for p in final.parts))
                final.length = len(final.data)

    def expected_status(self, upload: Model) -> int:
        if upload.deleted:
            return 404
        if upload.expired(self.now()):
            return 410
        if upload.parts is not None and not upload.assembled and upload.gone_part(self.now()):
            return 410
        return 200

    # -- rules -----------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        self.uploads = []

    @precondition(lambda self: len(self.uploads) < MAX_UPLOADS)
    @rule(
        length=st.one_of(st.none(), st.integers(0, 64)),
        partial=st.booleans(),
        first=st.one_of(st.none(), CHUNKS),
    )
    def create(self, length: int | None, partial: bool, first: bytes | None) -> None:
        headers = dict(TUS)
        if length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(length)
        if partial:
            headers["Upload-Concat"] = "partial"
        else:
            headers["Upload-Metadata"] = "filename " + base64.b64encode(b"f.bin").decode()
        body = b""
        if first is not None:
            body = first
            headers["Content-Type"] = "application/offset+octet-stream"
        since = self.now()
        answer = call(self.server, "POST", "/files/", headers, body)
        if first and length is not None and len(first) > length:
            assert answer.status == 413, answer
            return
        assert answer.status == 201, answer
        path = "/files/" + answer.headers["location"].rsplit("/", 1)[1]
        upload = Model(path, length, bytearray(body), partial)
        self.refreshed(upload, answer, since)
        self.uploads.append(upload)
        assert answer.headers["upload-offset"] == str(len(body))

    @precondition(lambda self: self.uploads)
    @rule(
        index=st.integers(0, MAX_UPLOADS),
        data=CHUNKS,
        shift=st.sampled_from([0, 0, 0, -1, 1, 5]),
        checksum=st.sampled_from(["none", "right", "wrong"]),
        set_length=st.one_of(st.none(), st.integers(0, 16)),
    )
    def patch(
        self, index: int, data: bytes, shift: int, checksum: str, set_length: int | None
    ) -> None:
        upload = self.pick(index)
        offset = max(0, len(upload.data) + shift)
        headers = {
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        }
        new_length = None
        if set_length is not None and upload.length is None and offset == len(upload.data):
            new_length = offset + len(data) + set_length
            headers["Upload-Length"] = str(new_length)
        if checksum != "none":
            digest = hashlib.sha1(data if checksum == "right" else data + b"x").digest()
            headers["Upload-Checksum"] = "sha1 " + base64.b64encode(digest).decode()
        since = self.now()
        answer = call(self.server, "PATCH", upload.path, headers, data)
        status = self.expected_status(upload)
        if status != 200:
            assert answer.status == status, answer
            return
        if upload.parts is not None:
            assert answer.status == 403, answer
            return
        length = new_length if new_length is not None else upload.length
        if offset != len(upload.data):
            assert answer.status == 409, answer
            return
        if length is not None and offset + len(data) > length:
            assert answer.status == 413, answer
            return
        if checksum == "wrong":
            assert answer.status == 460, answer
            return
        assert answer.status == 204, answer
        upload.length = length
        upload.data += data
        self.refreshed(upload, answer, since)
        assert answer.headers["upload-offset"] == str(len(upload.data))
        self.assemble_finals()

    @precondition(lambda self: self.uploads)
    @rule(
        index=st.integers(0, MAX_UPLOADS),
        data=st.binary(min_size=1, max_size=48),
        keep=st.floats(0, 1),
        checksum=st.booleans(),
    )
    def cut(self, index: int, data: bytes, keep: float, checksum: bool) -> None:
        """A body that ends early: kept as far as it came, unless a checksum covered it."""
        upload = self.pick(index)
        if self.expected_status(upload) != 200 or upload.parts is not None:
            return
        room = None if upload.length is None else upload.length - len(upload.data)
        if room is not None and len(data) > room:
            data = data[:room]
        if not data:
            return
        sent = data[: int(len(data) * keep) % len(data)]
        headers = {
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(len(upload.data)),
        }
        if checksum:
            digest = hashlib.sha1(data).digest()
            headers["Upload-Checksum"] = "sha1 " + base64.b64encode(digest).decode()
        since = self.now()
        cut_patch(self.server, upload.path, headers, sent, len(data))
        if not checksum:
            upload.data += sent
        # The cut write still refreshed the expiry (the server records the offset it kept);
        # read it back, as a client would by HEAD.
        head = call(self.server, "HEAD", upload.path, dict(TUS))
        assert head.status == 200, head
        self.refreshed(upload, head, since)
        self.assemble_finals()

    @precondition(lambda self: self.uploads)
    @rule(index=st.integers(0, MAX_UPLOADS))
    def delete(self, index: int) -> None:
        upload = self.pick(index)
        answer = call(self.server, "DELETE", upload.path, dict(TUS))
        if upload.deleted:
            assert answer.status == 404, answer
            return
        assert answer.status == 204, answer
        upload.deleted = True

    @precondition(
        lambda self: len(self.uploads) < MAX_UPLOADS and any(u.partial for u in self.uploads)
    )
    @rule(picks=st.lists(st.integers(0, MAX_UPLOADS), min_size=1, max_size=3))
    def concatenate(self, picks: list[int]) -> None:
        partials = [u for u in self.uploads if u.partial]
        parts = [partials[i % len(partials)] for i in picks]
        value = "final;" + " ".join(p.path for p in parts)
        answer = call(self.server, "POST", "/files/", {**TUS, "Upload-Concat": value})
        if any(p.deleted or p.expired(self.now()) for p in parts):
            assert answer.status == 400, answer
            return
        assert answer.status == 201, answer
        final = Model("/files/" + answer.headers["location"].rsplit("/", 1)[1], None, parts=parts)
        self.uploads.append(final)
        self.assemble_finals()

    @rule(minutes=st.integers(5, 50))
    def advance(self, minutes: int) -> None:
        seconds = minutes * 60.0
        # Never land within seconds of an expiry: the server and the model read time apart.
        for _ in range(10):
            then = self.now() + timedelta(seconds=seconds)
            near = [
                u
                for u in self.uploads
                if u.expires is not None and abs((u.expires - then).total_seconds()) < 10
            ]
            if not near:
                break
            seconds += 30
        self.server.clock.advance(seconds)

    # -- after every step ----------------------------------------------------------------
    @invariant()
    def server_agrees(self) -> None:
        for upload in self.uploads:
            head = call(self.server, "HEAD", upload.path, dict(TUS))
            status = self.expected_status(upload)
            assert head.status == status, (upload, head)
            file = self.data_dir / "files" / upload.id
            if status != 200:
                if upload.deleted:
                    assert not file.exists(), file
                continue
            assert head.headers["cache-control"] == "no-store"
            if upload.parts is not None and not upload.assembled:
                assert "upload-offset" not in head.headers, head
                continue
            assert head.headers["upload-offset"] == str(len(upload.data)), (upload, head)
            if upload.length is None:
                assert head.headers.get("upload-defer-length") == "1", head
            else:
                assert head.headers["upload-length"] == str(upload.length), head
            assert stored(self.data_dir, upload.id) == bytes(upload.data), upload


def stored(data_dir: Path, upload_id: str) -> bytes:
    file = data_dir / "files" / upload_id
    parts = file.with_name(upload_id + ".parts")
    if parts.is_dir():
        return b"".join(p.read_bytes() for p in sorted(parts.iterdir()))
    return file.read_bytes()


@pytest.mark.timeout(600)
def test_the_server_agrees_with_the_model(tmp_path: Path) -> None:
    examples = int(os.environ.get("UPWELL_MODEL_EXAMPLES", "20"))
    data_dir = tmp_path / "data"
    with threaded_server(ServerSettings(port=0, data_dir=data_dir, expiry=EXPIRY)) as server:
        TusModel.server = server
        TusModel.data_dir = data_dir
        run_state_machine_as_test(
            TusModel,
            settings=settings(
                max_examples=examples,
                stateful_step_count=25,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
                print_blob=True,
            ),
        )
