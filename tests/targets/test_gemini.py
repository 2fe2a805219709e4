"""upwell's Gemini target against the emulator on loopback: byte-identical arrival with faults
injected, clear errors (wrong key, too large), granularity, resume, processing, secrets."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.files import make_file
from tests.support.proxy import fault_proxy
from tests.support.waits import within
from upwell import ChunkedUploader, ParallelUploader, ResumableUploader, UploadProgress
from upwell.emulators.gemini import EMULATOR, FaultPlan, GeminiEmulator, create_gemini_app
from upwell.emulators.runner import running_emulator
from upwell.engine.pipeline import Journal, Pipeline
from upwell.engine.planner import MiB, plan_upload
from upwell.engine.retry import RetryPolicy
from upwell.errors import ConfigError, TargetError
from upwell.progress import ProgressTracker
from upwell.protocols import google_resumable as gr
from upwell.targets.base import FileService, SourceInfo
from upwell.targets.gemini import GeminiTarget
from upwell.targets.resolve import resolve_target

KEY = "test-key-abc123"
G = 256 * 1024


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Emu:
    """A running emulator, what it saw, and where it keeps bytes."""

    url: str
    app: web.Application
    data_dir: Path
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def state(self) -> GeminiEmulator:
        return self.app[EMULATOR]

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    def stored(self, name: str) -> Path:
        return self.data_dir / "files" / f"{name.removeprefix('files/')}.bin"

    def target(self, **kw: Any) -> GeminiTarget:
        kw.setdefault("granularity", G)
        kw.setdefault("sleep", no_sleep)
        return GeminiTarget(kw.pop("api_key", KEY), self.url, **kw)


EmuFactory = Callable[..., Awaitable[Emu]]


@pytest.fixture
async def start_emu(tmp_path: Path) -> AsyncIterator[EmuFactory]:
    """Start emulators (loopback, free port) that record every request they see."""
    stack: list[Any] = []

    async def start(**kw: Any) -> Emu:
        kw.setdefault("api_key", KEY)
        kw.setdefault("granularity", G)
        data_dir = tmp_path / f"emu{len(stack)}"
        app = create_gemini_app(data_dir, **kw)
        emu = Emu("", app, data_dir)

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            emu.seen.append((request.method, request.path_qs, dict(request.headers)))
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(record)
        cm = running_emulator(app)
        emu.url = await cm.__aenter__()
        stack.append(cm)
        return emu

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


async def test_upload_arrives_byte_identical_in_granular_chunks(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "clip.mp4", 5 * G + 123, seed=1)
    events: list[UploadProgress] = []
    uploader = ChunkedUploader(target=emu.target(), chunk_size=2 * G, sleep=no_sleep)
    result = await uploader.upload_file(
        src, display_name="My clip", progress_callback=events.append
    )
    assert result.success, result.error
    assert result.file_name is not None and result.file_name.startswith("files/")
    assert result.file_uri == f"{emu.url}/v1beta/{result.file_name}"
    assert result.sha256 == sha256_of(src)
    assert [c.size for c in result.chunks] == [2 * G, 2 * G, G + 123]
    assert sha256_of(emu.stored(result.file_name)) == sha256_of(src)
    assert result.extra["mime_type"] == "video/mp4"
    assert result.extra["display_name"] == "My clip"
    assert result.extra["state"] == "ACTIVE"
    assert result.extra["expiration_time"]
    assert events[-1].stage == "complete" and events[-1].file_uri == result.file_uri
    assert emu.faults.chunk_requests == 3  # one request per chunk, the last one finalizes


@pytest.mark.parametrize(
    "faults",
    [
        FaultPlan(fail_every=2),
        FaultPlan(fail_every=3, retry_after=0, fail_status=500),
        FaultPlan(drop_after=G + 5000, drop_every=2),  # cut mid-chunk, past one granule
        FaultPlan(drop_after=100, drop_requests=frozenset({1, 3})),
        FaultPlan(delay=0.01, fail_requests=frozenset({4}), drop_after=3 * G, drop_every=3),
    ],
    ids=["503-every-2nd", "500-retry-after", "drop-mid-chunk", "drop-early", "slow-mixed"],
)
async def test_faults_never_change_what_arrives(
    start_emu: EmuFactory, tmp_path: Path, faults: FaultPlan
) -> None:
    emu = await start_emu(faults=faults)
    src = make_file(tmp_path / "data.bin", 9 * G + 7, seed=2)
    uploader = ChunkedUploader(target=emu.target(), chunk_size=4 * G, max_retries=8, sleep=no_sleep)
    result = await uploader.upload_file(src)
    assert result.success, result.error
    assert faults.failed + faults.dropped > 0
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    assert result.sha256 == sha256_of(src)


async def test_connections_cut_by_the_network_resume_at_the_services_offset(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "n.bin", 12 * G + 9, seed=3)
    size = src.stat().st_size
    async with fault_proxy(emu.url, cut_at=[G // 2, 5 * G, 9 * G + 100]) as proxy:
        base = f"http://127.0.0.1:{proxy.port}"
        target = GeminiTarget(KEY, base, granularity=G, sleep=no_sleep)
        uploader = ChunkedUploader(target=target, chunk_size=4 * G, max_retries=6, sleep=no_sleep)
        result = await uploader.upload_file(src)
    assert result.success, result.error
    assert proxy.cuts == 3
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    # Only what the service had not kept is sent again: at most two chunks per cut (the cut
    # one, and one refused at a stale offset when the service stored the cut one late).
    assert size <= result.bytes_sent < size + 3 * 2 * 4 * G


async def test_a_wrong_key_fails_clearly_before_any_byte(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "a.bin", 3 * G, seed=4)
    result = await ChunkedUploader(target=emu.target(api_key="wrong-key")).upload_file(src)
    assert not result.success
    assert result.error is not None
    assert "refused the API key" in result.error and "GEMINI_API_KEY" in result.error
    assert "wrong-key" not in result.error
    assert result.error_type == "TargetError"
    assert emu.faults.chunk_requests == 0 and not emu.state.uploads


def test_a_missing_key_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        resolve_target("gemini", None, {})
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        resolve_target("gemini", None, {"GEMINI_API_KEY": "  "})


def test_resolve_reads_key_base_url_and_version_from_the_environment() -> None:
    env = {"GEMINI_API_KEY": "secret-key-1", "GOOGLE_GEMINI_BASE_URL": "http://sdk:1"}
    t = resolve_target(None, None, env)
    assert isinstance(t, GeminiTarget)
    assert t.url == "http://sdk:1/upload/v1beta/files"
    assert "secret-key-1" not in t.url + repr(t)
    env["GEMINI_BASE_URL"] = "http://ours:2/"
    env["GEMINI_API_VERSION"] = "v1"
    t = resolve_target("gemini", "explicit", env)
    assert isinstance(t, GeminiTarget)
    assert (t.base_url, t.api_version) == ("http://ours:2", "v1")
    assert t.api_headers() == {"x-goog-api-key": "explicit"}
    assert resolve_target(None, "k2", {}).url.startswith(
        "https://generativelanguage.googleapis.com/upload/v1beta/"
    )
    with pytest.raises(ConfigError):
        resolve_target("gemini", "k", {"GEMINI_BASE_URL": "ftp://x"})
    with pytest.raises(ConfigError):
        resolve_target("gemini", "k", {"GEMINI_API_VERSION": "latest"})


async def test_a_file_over_the_limit_fails_before_any_request(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "big.bin", 2 * MiB + 1, seed=5)
    result = await ChunkedUploader(target=emu.target(max_size=2 * MiB)).upload_file(src)
    assert not result.success and result.error_type == "SourceError"
    assert "over the target's limit" in (result.error or "")
    assert emu.seen == []


async def test_the_services_own_size_limit_is_reported_clearly(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(max_size=1 * MiB)
    src = make_file(tmp_path / "big.bin", 1 * MiB + 1, seed=5)
    result = await ChunkedUploader(target=emu.target()).upload_file(src)
    assert not result.success
    assert "HTTP 400 INVALID_ARGUMENT" in (result.error or "")
    assert "exceeds the maximum" in (result.error or "")
    assert emu.faults.chunk_requests == 0


async def test_the_real_8_mib_granularity_is_honoured_when_5_mb_chunks_are_asked(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(granularity=8 * MiB, processing_polls=0)
    src = make_file(tmp_path / "v.bin", 20 * MiB + 11, seed=6)
    target = GeminiTarget(KEY, emu.url)  # the real service's capabilities
    uploader = ChunkedUploader(target=target, chunk_size=5 * 1000 * 1000)
    result = await uploader.upload_file(src)
    assert result.success, result.error
    assert [c.size for c in result.chunks] == [8 * MiB, 8 * MiB, 4 * MiB + 11]
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)


async def test_a_different_granularity_from_the_service_is_learnt_then_used(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(granularity=2 * G)
    src = make_file(tmp_path / "g.bin", 5 * G, seed=7)
    target = emu.target()  # believes G
    uploader = ChunkedUploader(target=target, chunk_size=G)
    first = await uploader.upload_file(src)
    assert not first.success
    assert "multiples of 512 KiB" in (first.error or "") and "try again" in (first.error or "")
    assert not emu.state.uploads  # the unusable upload was cancelled
    second = await uploader.upload_file(src)
    assert second.success, second.error
    assert [c.size for c in second.chunks] == [2 * G, 2 * G, G]


async def test_state_lets_a_new_process_resume_with_a_query(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_requests=frozenset({3}), fail_status=400))
    src = make_file(tmp_path / "r.bin", 6 * G + 1, seed=8)
    size = src.stat().st_size
    states: list[dict[str, Any]] = []

    async def keep(state: dict[str, Any], _: Any) -> None:
        states.append(json.loads(json.dumps(state)))  # JSON-ready, as a session stores it

    async def run(journal: Journal) -> Any:
        async with aiohttp.ClientSession() as http:
            pipeline = Pipeline(
                http, emu.target(), chunk_size=G, max_parallel=1, retry=RetryPolicy(0)
            )
            tracker = ProgressTracker()
            tracker.create_task("t", size)
            return await pipeline.run(src, tracker, "t", journal=journal)

    with pytest.raises(TargetError) as info:
        await run(Journal(on_state=keep))
    assert "upload_id" not in str(info.value) and emu.url not in str(info.value)
    state = states[-1]
    assert state["size"] == size and state["upload_url"] and state["file"] is None
    assert KEY not in json.dumps(state)
    outcome = await run(Journal(resume_state=state))
    assert outcome.bytes_sent == size - 2 * G  # two chunks were kept; only the rest went again
    assert sha256_of(emu.stored(outcome.remote.name)) == sha256_of(src)
    assert len(emu.state.uploads) == 1  # no second upload was started


async def test_an_expired_upload_url_says_start_over_and_a_session_does(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    clock = [datetime(2025, 1, 1, tzinfo=UTC)]
    emu = await start_emu(
        faults=FaultPlan(fail_requests=frozenset({2}), fail_status=400), now=lambda: clock[0]
    )
    src = make_file(tmp_path / "s.bin", 4 * G, seed=9)
    uploader = ResumableUploader(
        target=emu.target(),
        chunk_size=G,
        max_retries=0,
        session_dir=tmp_path / "sessions",
        sleep=no_sleep,
    )
    first = await uploader.upload_file_resumable(src, session_id="s1")
    assert not first.success
    clock[0] += timedelta(days=8)  # the upload URL has expired at the service

    # What the target says on its own: non-retryable, and the upload must start over.
    session = await uploader.resume_session("s1")
    assert session is not None and session.target_state
    async with aiohttp.ClientSession() as http:
        target = emu.target()
        caps = await target.open(http)
        plan = plan_upload(session.file_size, caps, G, 1)
        info = SourceInfo("s.bin", session.file_size, "application/octet-stream", "s.bin")
        remote = target.new_upload(http, info, plan, session.target_state)
        with pytest.raises(TargetError, match="must start over") as err:
            await remote.part_offset(plan.parts[0])
    assert not err.value.retryable and err.value.status == 404

    second = await uploader.upload_file_resumable(src, session_id="s1")
    assert second.success, second.error
    assert sha256_of(emu.stored(second.file_name or "")) == sha256_of(src)


async def test_finish_waits_for_active_with_backoff(start_emu: EmuFactory, tmp_path: Path) -> None:
    emu = await start_emu(processing_polls=4)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    src = make_file(tmp_path / "p.bin", 10, seed=10)
    target = emu.target(sleep=record, poll_interval=1.0, max_poll_interval=3.0)
    result = await ChunkedUploader(target=target).upload_file(src)
    assert result.success, result.error
    assert result.extra["state"] == "ACTIVE"
    # The first look is at once (no wait), then the waits grow up to the maximum.
    assert waits == [1.0, 2.0, 3.0]


async def test_finish_looks_at_once_and_says_the_service_is_processing(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(processing_polls=1)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    src = make_file(tmp_path / "p.bin", 10, seed=10)
    uploader = ChunkedUploader(target=emu.target(sleep=record))
    uploader.progress_tracker._min_interval = 0.0
    events: list[UploadProgress] = []
    result = await uploader.upload_file(src, progress_callback=events.append)
    assert result.success, result.error
    assert waits == []  # ACTIVE at the first look, made at once
    assert any("is processing files/" in e.message for e in events)
    assert GeminiTarget(KEY).poll_interval <= 0.1  # short intervals by default


async def test_the_project_is_listed_once_per_process_for_its_quota(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    uploader = ChunkedUploader(target=emu.target(project_quota=100 * G), sleep=no_sleep)
    for i in range(3):
        src = make_file(tmp_path / f"{i}.bin", 1000, seed=i)
        assert (await uploader.upload_file(src)).success
    # Another target object for the same service and key shares what was listed.
    other = ChunkedUploader(target=emu.target(project_quota=100 * G), sleep=no_sleep)
    assert (await other.upload_file(tmp_path / "0.bin")).success
    lists = [p for m, p, _ in emu.seen if m == "GET" and p.split("?")[0].endswith("/files")]
    assert len(lists) == 1


async def test_a_listing_that_fails_does_not_fail_the_upload(
    start_emu: EmuFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_list=True))
    src = make_file(tmp_path / "q.bin", 1000, seed=3)
    uploader = ChunkedUploader(
        target=emu.target(project_quota=1 * G), sleep=no_sleep, max_retries=0
    )
    result = await uploader.upload_file(src)
    assert result.success, result.error
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    assert "could not list the project's files" in caplog.text


async def test_a_file_that_fails_processing_fails_the_upload(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_processing=True))
    src = make_file(tmp_path / "f.bin", 10, seed=11)
    result = await ChunkedUploader(target=emu.target()).upload_file(src)
    assert not result.success
    assert "could not process files/" in (result.error or "")


async def test_processing_that_outlasts_the_timeout_names_the_file(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(processing_polls=1000)
    now = [0.0]

    async def advance(seconds: float) -> None:
        now[0] += seconds

    target = emu.target(sleep=advance, poll_timeout=30.0, clock=lambda: now[0])
    src = make_file(tmp_path / "t.bin", 10, seed=12)
    result = await ChunkedUploader(target=target).upload_file(src)
    assert not result.success
    assert "still PROCESSING after 30s" in (result.error or "")
    assert "upwell files get files/" in (result.error or "")
    assert now[0] == 30.0


async def test_an_empty_file_is_finalized_without_bytes(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    result = await ChunkedUploader(target=emu.target()).upload_file(src)
    assert result.success, result.error
    assert result.total_size == 0 and result.sha256 == hashlib.sha256(b"").hexdigest()


async def test_the_key_is_only_ever_in_the_api_key_header_and_never_on_chunks(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_every=2))
    src = make_file(tmp_path / "k.bin", 3 * G, seed=13)
    result = await ChunkedUploader(target=emu.target(), chunk_size=G, sleep=no_sleep).upload_file(
        src
    )
    assert result.success, result.error
    assert emu.seen
    for method, path_qs, headers in emu.seen:
        assert KEY not in path_qs
        api_call = "upload_id=" not in path_qs
        assert (headers.get("x-goog-api-key") == KEY) is api_call, (method, path_qs)
        assert KEY not in json.dumps({k: v for k, v in headers.items() if k != "x-goog-api-key"})


async def test_a_cancelled_upload_is_aborted_at_the_service(start_emu: EmuFactory) -> None:
    emu = await start_emu()
    async with aiohttp.ClientSession() as http:
        target = emu.target()
        caps = await target.open(http)
        plan = plan_upload(3 * G, caps, G, 1)
        remote = target.new_upload(http, SourceInfo("c.bin", 3 * G, "x/y", "c"), plan)
        await remote.create()
        assert len(emu.state.uploads) == 1
        await remote.abort()
        assert not emu.state.uploads
        with pytest.raises(TargetError, match="must start over"):
            await remote.part_offset(plan.parts[0])


async def test_files_get_list_and_delete_helpers(start_emu: EmuFactory, tmp_path: Path) -> None:
    emu = await start_emu(processing_polls=0)
    uploader = ChunkedUploader(target=emu.target())
    names: list[str] = []
    for i in range(3):
        r = await uploader.upload_file(make_file(tmp_path / f"{i}.txt", 5 + i, seed=i))
        names.append(r.file_name or "")
    target = emu.target()
    async with aiohttp.ClientSession() as http:
        listed = [f.name async for f in target.list_files(http, page_size=2)]
        assert sorted(listed) == sorted(names)
        assert isinstance(target, FileService)
        f = await target.get_file(http, names[0])
        assert f.size == 5 and f.extra["state"] == gr.STATE_ACTIVE and f.sha256
        assert f.summary()["display_name"] == "0.txt"
        same = await target.get_file(http, f.uri)
        assert same.name == f.name
        found = await target.find_file(http, f.name)
        assert found is not None and (found.name, found.size, found.sha256) == (f.name, 5, f.sha256)
        await target.delete_file(http, f.name)
        assert await target.find_file(http, f.name) is None
        with pytest.raises(TargetError) as info:
            await target.get_file(http, f.name)
        assert info.value.status == 403 and not info.value.retryable
        with pytest.raises(ConfigError):
            await target.get_file(http, "Not A Name")
        bad = emu.target(api_key="bad")
        with pytest.raises(TargetError, match="refused the API key"):
            [f async for f in bad.list_files(http)]
        with pytest.raises(ConfigError, match="gemini does not serve file content"):
            await target.file_content(http, names[1])


# -- the seed guide's examples, as written, with GEMINI_BASE_URL at the emulator ----------
@pytest.fixture
async def gemini_env(start_emu: EmuFactory, monkeypatch: pytest.MonkeyPatch) -> Emu:
    # The real service's granularity; files ACTIVE at once (nothing to wait for).
    emu = await start_emu(granularity=8 * MiB, processing_polls=0)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", emu.url)
    monkeypatch.delenv("UPWELL_TARGET", raising=False)
    return emu


async def test_seed_foundation_example_runs_against_the_emulator(
    gemini_env: Emu, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "file.mp4", 9 * MiB, seed=15)
    messages: list[str] = []

    # As in the seed guide (Foundation Layer > Usage Example).
    uploader = ChunkedUploader(
        api_key=os.getenv("GEMINI_API_KEY"),
        chunk_size=5 * 1024 * 1024,
    )

    def show_progress(progress: UploadProgress) -> None:
        messages.append(f"[{progress.percentage:.1f}%] {progress.message}")

    result = await uploader.upload_file(
        file_path=path,
        display_name="My Video",
        progress_callback=show_progress,
    )

    assert result.success, result.error
    assert result.file_uri == f"{gemini_env.url}/v1beta/{result.file_name}"
    assert sha256_of(gemini_env.stored(result.file_name or "")) == sha256_of(path)
    assert messages and messages[-1].startswith("[100.0%]")


async def test_seed_feature_streaming_example_runs_against_the_emulator(
    gemini_env: Emu, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "file.mp4", 3 * MiB, seed=16)

    # As in the seed guide (Feature Layer > Streaming Progress Example).
    uploader = ParallelUploader(
        api_key=os.getenv("GEMINI_API_KEY"),
        max_parallel=3,
    )
    last: dict[str, Any] = {}
    async for progress in uploader.upload_file_streaming(path):
        last = progress
        if progress["stage"] == "complete":
            break

    assert last["stage"] == "complete"
    assert last["file_uri"].startswith(f"{gemini_env.url}/v1beta/files/")
    name = "files/" + last["file_uri"].rsplit("/", 1)[-1]
    assert sha256_of(gemini_env.stored(name)) == sha256_of(path)


async def test_compression_is_never_sent_to_gemini(start_emu: EmuFactory, tmp_path: Path) -> None:
    emu = await start_emu()
    src = tmp_path / "notes.txt"
    src.write_bytes(b"the same line, very compressible\n" * 40_000)
    uploader = ResumableUploader(
        target=emu.target(),
        chunk_size=G,
        compression_enabled=True,
        session_dir=tmp_path / "sessions",
    )
    # Gzip sent unasked makes the service's offsets disagree with the client's, and the
    # retries would run into the per-test timeout: fail fast, saying why.
    result = await within(
        uploader.upload_file_resumable(src),
        "the upload to finish (gzip sent to a service that never offered it?)",
        seconds=30,
    )
    assert result.success, result.error
    assert emu.stored(result.file_name or "").read_bytes() == src.read_bytes()
    assert not any("Content-Encoding" in headers for _, _, headers in emu.seen)


async def test_an_error_that_quotes_the_upload_url_never_shows_it() -> None:
    url = "https://h/upload/v1beta/files?upload_id=SECRET123&upload_protocol=resumable"
    plan = plan_upload(10, await GeminiTarget(KEY).open(None), None, 1)  # type: ignore[arg-type]
    remote = GeminiTarget(KEY).new_upload(
        None,  # type: ignore[arg-type]
        SourceInfo("a", 10, "x/y", "a"),
        plan,
        {"upload_url": url, "size": 10},
    )
    for text in (f"failed: {url}", "failed: upload_id=SECRET123&upload_protocol=resumable"):
        scrubbed = remote._scrub(TargetError(text, status=503, retryable=True))
        assert "SECRET123" not in str(scrubbed)
        assert scrubbed.retryable and scrubbed.status == 503
    plain = TargetError("nothing to hide")
    assert remote._scrub(plain) is plain


async def test_a_file_the_project_has_no_room_for_fails_before_the_first_byte(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    quota = 3 * G
    first = make_file(tmp_path / "a.bin", 2 * G, seed=1)
    second = make_file(tmp_path / "b.bin", 2 * G, seed=2)
    uploader = ChunkedUploader(target=emu.target(project_quota=quota), sleep=no_sleep)
    assert (await uploader.upload_file(first)).success
    chunks_before = emu.faults.chunk_requests
    result = await uploader.upload_file(second)
    assert not result.success
    assert result.error is not None and "does not fit" in result.error
    assert emu.faults.chunk_requests == chunks_before  # not one byte was sent
    assert len(emu.state.uploads) == 1  # and no upload was even started


async def test_auto_chunk_size_merges_granular_chunks_over_a_long_link(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    """One stream per file here: once the idle time per request is measured, requests carry
    several planned chunks (each a multiple of the granularity), so fewer go out."""
    from benchmarks.wan_proxy import wan_proxy

    emu = await start_emu()
    size = 36 * G - 5  # just under 9 MiB: planned in 1 MiB chunks (the seed's table)
    src = make_file(tmp_path / "long.bin", size, seed=40)
    async with wan_proxy(emu.url, rtt=0.04, conn_rate=8e6) as proxy:
        target = GeminiTarget(KEY, f"http://127.0.0.1:{proxy.port}", granularity=G, sleep=no_sleep)
        uploader = ChunkedUploader(target=target)
        result = await uploader.upload_file(src)
    assert result.success, result.error
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    planned = result.total_chunks
    assert planned == 9
    assert emu.faults.chunk_requests < planned  # merged
    assert all(c.uploaded and c.checksum for c in result.chunks)
