"""The OpenAI-compatible targets (openai, kimi, glm) and the Uploads API, against the emulator
on loopback: byte-identical with faults injected, limits before the first byte, parts resumed
from the journaled ids, expiry, and the key kept out of everything but the header."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.files import make_file
from upwell import ChunkedUploader, ParallelUploader, ResumableUploader
from upwell.emulators.openai import EMULATOR, FaultPlan, OpenAIEmulator, create_openai_app
from upwell.emulators.runner import running_emulator
from upwell.engine.pipeline import Journal, Pipeline
from upwell.engine.planner import plan_upload
from upwell.engine.retry import RetryPolicy
from upwell.errors import ConfigError, SourceError, TargetError
from upwell.progress import ProgressTracker
from upwell.protocols import openai_files as of
from upwell.targets.base import FileService, SourceInfo
from upwell.targets.openai import OpenAITarget, PartsUpload, SingleUpload
from upwell.targets.resolve import resolve_target

KEY = "sk-test-secret-key-0123456789"
KiB = 1024
MiB = 1024 * KiB
PREFIX = {"openai": "/v1", "kimi": "/v1", "glm": "/api/paas/v4"}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def no_sleep(_: float) -> None:
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Emu:
    url: str
    app: web.Application
    data_dir: Path
    clock: Clock
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def state(self) -> OpenAIEmulator:
        return self.app[EMULATOR]

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    def stored(self, file_id: str) -> Path:
        return self.data_dir / "files" / f"{file_id}.bin"

    def target(self, preset: str = "openai", **kw: Any) -> OpenAITarget:
        kw.setdefault("clock", self.clock)
        return OpenAITarget(kw.pop("api_key", KEY), preset, self.url + PREFIX[preset], **kw)

    def posts(self, what: str) -> int:
        return sum(1 for m, p, _ in self.seen if m == "POST" and p.endswith(what))


EmuFactory = Callable[..., Awaitable[Emu]]


@pytest.fixture
async def start_emu(tmp_path: Path) -> AsyncIterator[EmuFactory]:
    """Start emulators (loopback, free port) that record every request they see."""
    stack: list[Any] = []

    async def start(**kw: Any) -> Emu:
        kw.setdefault("api_key", KEY)
        clock = Clock()
        data_dir = tmp_path / f"emu{len(stack)}"
        app = create_openai_app(data_dir, now=clock, **kw)
        emu = Emu("", app, data_dir, clock)

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


@pytest.mark.parametrize("preset", ["openai", "kimi", "glm"])
@pytest.mark.parametrize(
    "fault_kw",
    [
        {},
        {"fail_requests": frozenset({1, 2}), "fail_status": 502},
        {"drop_after": 300 * KiB, "drop_requests": frozenset({1})},
    ],
    ids=["clean", "5xx", "dropped"],
)
async def test_each_preset_arrives_byte_identical_in_one_streamed_request(
    start_emu: EmuFactory, tmp_path: Path, preset: str, fault_kw: dict[str, Any]
) -> None:
    faults = FaultPlan(**fault_kw)
    emu = await start_emu(faults=faults)
    src = make_file(tmp_path / "report.pdf", 2 * MiB + 17, seed=1)
    target = emu.target(preset)
    uploader = ChunkedUploader(target=target, max_retries=4, sleep=no_sleep)
    result = await uploader.upload_file(src)
    assert result.success, result.error
    file_id = result.file_name or ""
    assert file_id.startswith("file-")
    assert result.file_uri == f"{emu.url}{PREFIX[preset]}/files/{file_id}"
    assert sha256_of(emu.stored(file_id)) == sha256_of(src) == result.sha256
    f = emu.state.files[file_id]
    assert f.purpose == of.PRESETS[preset].default_purpose and f.filename == "report.pdf"
    assert result.extra["purpose"] == f.purpose
    # One request per attempt: the faults cost whole resends, nothing else.
    assert emu.posts("/files") == 1 + faults.failed + faults.dropped
    assert not emu.posts("/uploads")
    for _, _, headers in emu.seen:
        assert headers["Authorization"] == f"Bearer {KEY}"


class RecordingThrottle:
    """A throttle that lets everything through and records each slice it was asked about."""

    def __init__(self) -> None:
        self.slices: list[int] = []

    async def consume(self, n: int) -> None:
        self.slices.append(n)

    def slice_size(self, default: int) -> int:
        return 256 * KiB

    def record_success(self) -> None:
        return None

    def record_failure(self, status: int | None) -> None:
        return None


async def test_the_body_is_streamed_from_disk_through_the_throttle_slice_by_slice(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "s.bin", 5 * MiB + 3, seed=2)
    throttle = RecordingThrottle()
    result = await ChunkedUploader(target=emu.target("kimi"), throttle=throttle).upload_file(src)
    assert result.success, result.error
    assert sum(throttle.slices) == src.stat().st_size
    assert max(throttle.slices) == 256 * KiB and len(throttle.slices) == 21


async def test_purpose_overrides_and_a_0_byte_file_goes_too(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = await ChunkedUploader(target=emu.target("glm", purpose="batch")).upload_file(empty)
    assert result.success, result.error
    f = emu.state.files[result.file_name or ""]
    assert (f.purpose, f.bytes) == ("batch", 0)


@pytest.mark.parametrize(
    ("preset", "purpose", "limit"),
    [
        ("kimi", None, 100 * MiB),
        ("glm", None, 50 * MiB),
        ("glm", "code-interpreter", 20 * MiB),
        ("openai", "batch", 200 * MiB),
    ],
)
async def test_provider_limits_are_checked_before_the_first_byte(
    start_emu: EmuFactory, tmp_path: Path, preset: str, purpose: str | None, limit: int
) -> None:
    emu = await start_emu()
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # sparse: the check must not need the bytes
        fh.truncate(limit + 1)
    target = emu.target(preset, purpose=purpose, multipart=False)
    result = await ChunkedUploader(target=target).upload_file(big)
    assert not result.success and result.error_type == SourceError.__name__
    assert "over the target's limit" in (result.error or "")
    assert emu.seen == []  # not one request


async def test_openai_above_the_single_limit_goes_in_parallel_parts_with_md5(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(max_file_size=4 * MiB)
    src = make_file(tmp_path / "big.bin", 10 * MiB + 5, seed=3)
    target = emu.target(max_file_size=4 * MiB)
    uploader = ParallelUploader(target=target, chunk_size=2 * MiB, max_parallel=3, sleep=no_sleep)
    result = await uploader.upload_file(src)
    assert result.success, result.error
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    assert emu.posts("/uploads") == 1 and emu.posts("/parts") == 6
    assert emu.posts("/complete") == 1 and emu.posts("/files") == 0
    (up,) = emu.state.uploads.values()
    assert up.md5 == hashlib.md5(src.read_bytes()).hexdigest()  # given, and checked


@pytest.mark.parametrize(
    "faults",
    [
        FaultPlan(fail_every=3),
        FaultPlan(drop_after=700 * KiB, drop_every=2),
        FaultPlan(
            delay=0.01, fail_requests=frozenset({1}), drop_after=10, drop_requests=frozenset({4})
        ),
    ],
    ids=["5xx-every-3rd", "dropped-mid-part", "mixed"],
)
async def test_parts_survive_faults_byte_identical(
    start_emu: EmuFactory, tmp_path: Path, faults: FaultPlan
) -> None:
    emu = await start_emu(faults=faults)
    src = make_file(tmp_path / "f.bin", 7 * MiB + 1, seed=4)
    target = emu.target(multipart=True)
    uploader = ParallelUploader(
        target=target, chunk_size=MiB, max_parallel=4, max_retries=6, sleep=no_sleep
    )
    result = await uploader.upload_file(src)
    assert result.success, result.error
    assert faults.failed + faults.dropped > 0
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)
    assert emu.state.part_requests == 8  # each part stored once, whatever was resent


async def test_a_journaled_state_resumes_with_only_the_missing_parts(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_requests=frozenset({4}), fail_status=400))
    src = make_file(tmp_path / "r.bin", 6 * MiB, seed=5)
    size = src.stat().st_size
    states: list[dict[str, Any]] = []

    async def keep(state: dict[str, Any], _: Any) -> None:
        states.append(json.loads(json.dumps(state)))  # JSON-ready, as a session stores it

    async def run(journal: Journal) -> Any:
        async with aiohttp.ClientSession() as http:
            pipeline = Pipeline(
                http,
                emu.target(multipart=True),
                chunk_size=MiB,
                max_parallel=1,
                retry=RetryPolicy(0),
            )
            tracker = ProgressTracker()
            tracker.create_task("t", size)
            return await pipeline.run(src, tracker, "t", journal=journal)

    with pytest.raises(TargetError) as info:
        await run(Journal(on_state=keep))
    assert KEY not in str(info.value)
    state = states[-1]
    assert state["upload_id"] and len(state["part_ids"]) == 3  # three parts landed before the 400
    assert KEY not in json.dumps(states)
    outcome = await run(Journal(resume_state=state))
    assert outcome.bytes_sent == size - 3 * MiB  # only the missing parts went
    assert sha256_of(emu.stored(outcome.remote.name)) == sha256_of(src)
    assert len(emu.state.uploads) == 1  # no second upload was created


async def test_an_expired_upload_starts_over_by_itself(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_requests=frozenset({2}), fail_status=400))
    src = make_file(tmp_path / "e.bin", 3 * MiB, seed=6)
    uploader = ResumableUploader(
        target=emu.target(multipart=True),
        chunk_size=MiB,
        max_parallel=1,
        max_retries=0,
        session_dir=tmp_path / "sessions",
        sleep=no_sleep,
    )
    first = await uploader.upload_file_resumable(src, session_id="e1")
    assert not first.success
    session = await uploader.resume_session("e1")
    assert session is not None and session.target_state["part_ids"]
    old = session.target_state["upload_id"]
    emu.clock.now += 3600  # the Upload's hour is over
    second = await uploader.upload_file_resumable(src, session_id="e1")
    assert second.success, second.error
    assert sha256_of(emu.stored(second.file_name or "")) == sha256_of(src)
    assert (emu.state.live_upload(old) or pytest.fail()).upload.status == "expired"
    assert len(emu.state.uploads) == 2


async def test_an_upload_expiring_mid_way_is_gone_and_a_session_starts_over(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu(faults=FaultPlan(fail_requests=frozenset({2}), fail_status=400))
    src = make_file(tmp_path / "m.bin", 3 * MiB, seed=7)
    target = emu.target(multipart=True, clock=lambda: 0.0)  # the client thinks it has time
    uploader = ResumableUploader(
        target=target,
        chunk_size=MiB,
        max_parallel=1,
        max_retries=0,
        session_dir=tmp_path / "sessions",
        sleep=no_sleep,
    )
    assert not (await uploader.upload_file_resumable(src, session_id="m1")).success
    emu.clock.now += 4000
    result = await uploader.upload_file_resumable(src, session_id="m1")
    assert result.success, result.error
    assert sha256_of(emu.stored(result.file_name or "")) == sha256_of(src)


async def test_cancel_ends_the_upload(start_emu: EmuFactory, tmp_path: Path) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "c.bin", 2 * MiB, seed=8)
    async with aiohttp.ClientSession() as http:
        target = emu.target(multipart=True)
        caps = await target.open(http)
        plan = plan_upload(src.stat().st_size, caps, MiB, 2)
        info = SourceInfo("c.bin", src.stat().st_size, "application/octet-stream", "c.bin")
        remote = target.new_upload(http, info, plan)
        assert isinstance(remote, PartsUpload)
        await remote.create()
        await remote.abort()
        (up,) = emu.state.uploads.values()
        assert up.upload.status == "cancelled"
        tiny = SourceInfo("a.txt", 10, "text/plain", "a.txt")
        forced = target.new_upload(http, tiny, plan_upload(10, caps, None, 1))
        assert isinstance(forced, PartsUpload)  # multipart=True: parts whatever the size
        auto = emu.target()
        whole_plan = plan_upload(10, await auto.open(http), None, 1)
        single = auto.new_upload(http, tiny, whole_plan)
        assert isinstance(single, SingleUpload)
        # A state an earlier --multipart run left does not turn a whole-file plan into parts.
        stale = auto.new_upload(http, tiny, whole_plan, {"upload_id": "upload_x", "size": 10})
        assert isinstance(stale, SingleUpload)
        kimi = emu.target("kimi")  # no Uploads API: one request, even before open()
        assert isinstance(kimi.new_upload(http, tiny, whole_plan), SingleUpload)


async def test_a_wrong_key_is_one_clear_error_without_the_key(
    start_emu: EmuFactory, tmp_path: Path
) -> None:
    emu = await start_emu()
    src = make_file(tmp_path / "k.bin", 1000, seed=9)
    wrong = "sk-wrong-0123456789abcdef"
    for preset in ("openai", "glm"):
        result = await ChunkedUploader(target=emu.target(preset, api_key=wrong)).upload_file(src)
        assert not result.success
        assert "refused the API key" in (result.error or "")
        assert of.PRESETS[preset].key_env in (result.error or "")
        assert wrong not in (result.error or "")


async def test_files_service_list_get_content_delete(start_emu: EmuFactory, tmp_path: Path) -> None:
    emu = await start_emu()
    target = emu.target("kimi")
    assert isinstance(target, FileService)
    text = tmp_path / "a.txt"
    text.write_text("hello, kimi\n", encoding="utf-8")
    names = []
    for i in range(3):
        r = await ChunkedUploader(target=target).upload_file(
            text if i == 0 else make_file(tmp_path / f"{i}.bin", 10 + i, seed=i)
        )
        names.append(r.file_name or "")
    async with aiohttp.ClientSession() as http:
        listed = [f.name async for f in target.list_files(http, page_size=2)]
        assert sorted(listed) == sorted(names)  # Kimi: one answer, no paging parameters
        paged = [f.name async for f in emu.target("glm").list_files(http, page_size=2)]
        assert paged == listed  # GLM: `limit` and `after`, pages of two
        assert any("limit=2&after=" in p for _, p, _ in emu.seen)
        f = await target.get_file(http, names[0])
        assert f.size == 12 and f.extra["filename"] == "a.txt"
        assert (await target.get_file(http, f.uri)).name == f.name
        assert await target.file_content(http, names[0]) == "hello, kimi\n"
        assert await target.still_has(http, f)
        await target.delete_file(http, names[0])
        assert not await target.still_has(http, f)
        with pytest.raises(TargetError) as info:
            await target.get_file(http, names[0])
        assert info.value.status == 404 and not info.value.retryable
        with pytest.raises(ConfigError, match="not a file id"):
            await target.get_file(http, "no such thing")
        # OpenAI serves a file's own bytes: text comes back as it is, binary is refused.
        openai_t = emu.target("openai")
        binary = (await ChunkedUploader(target=openai_t).upload_file(tmp_path / "1.bin")).file_name
        with pytest.raises(TargetError, match="not text"):
            await openai_t.file_content(http, binary or "")
        plain = (await ChunkedUploader(target=openai_t).upload_file(text)).file_name
        assert await openai_t.file_content(http, plain or "") == "hello, kimi\n"


def test_a_missing_key_is_a_config_error_naming_the_variable() -> None:
    for name, var in (
        ("openai", "OPENAI_API_KEY"),
        ("kimi", "MOONSHOT_API_KEY"),
        ("glm", "ZHIPUAI_API_KEY"),
    ):
        with pytest.raises(ConfigError, match=var):
            resolve_target(name, env={})
    with pytest.raises(ConfigError, match="no Uploads API"):
        resolve_target("kimi", env={"MOONSHOT_API_KEY": "k"}, multipart=True)
    with pytest.raises(ConfigError, match="--purpose"):
        resolve_target("gemini", env={"GEMINI_API_KEY": "k"}, purpose="x")


def test_resolve_reads_key_and_base_url_from_the_environment() -> None:
    env = {
        "OPENAI_API_KEY": "k1",
        "MOONSHOT_API_KEY": "k2",
        "MOONSHOT_BASE_URL": "https://api.moonshot.cn/v1/",
        "ZHIPUAI_API_KEY": "k3",
        "ZHIPUAI_BASE_URL": "https://api.z.ai/api/paas/v4",
    }
    openai_t = resolve_target("openai", env=env)
    kimi = resolve_target("kimi", env=env, purpose="image")
    glm = resolve_target("glm", env=env)
    assert isinstance(openai_t, OpenAITarget) and isinstance(kimi, OpenAITarget)
    assert isinstance(glm, OpenAITarget)
    assert (openai_t.url, openai_t.purpose) == ("https://api.openai.com/v1/files", "user_data")
    assert (kimi.url, kimi.purpose) == ("https://api.moonshot.cn/v1/files", "image")
    assert (glm.url, glm.purpose, glm.max_file_size) == (
        "https://api.z.ai/api/paas/v4/files",
        "file-extract",
        50 * MiB,
    )
    assert "k1" not in repr(openai_t) and os.environ.get("OPENAI_API_KEY") != "k1"
    # What a session recorded as its target resolves back to the preset (sessions rm)...
    again = resolve_target("https://api.moonshot.cn/v1/files", env=env)
    assert isinstance(again, OpenAITarget) and again.kind == "kimi"
    # ...but only with its key set; otherwise a URL is a tus endpoint.
    assert not isinstance(resolve_target("https://api.openai.com/v1/files", env={}), OpenAITarget)
