"""`upwell emulate openai`, `upwell upload --to openai|kimi|glm` and `upwell files` for those
providers as users run them: real processes on loopback, keys only in the environment."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.e2e.test_memory import PEAK
from tests.support.files import make_file
from tests.support.processes import UPWELL
from upwell.emulators.openai import EMULATOR, FaultPlan, create_openai_app
from upwell.emulators.runner import emulator_in_thread

KEY = "sk-cli-test-key-4242424242"
MiB = 1024 * 1024
ENV = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "kimi": ("MOONSHOT_API_KEY", "MOONSHOT_BASE_URL", "/v1"),
    "glm": ("ZHIPUAI_API_KEY", "ZHIPUAI_BASE_URL", "/api/paas/v4"),
}


def upwell(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UPWELL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def provider_env(provider: str, url: str, tmp_path: Path, key: str = KEY) -> dict[str, str]:
    key_var, base_var, prefix = ENV[provider]
    return {
        key_var: key,
        base_var: url + prefix,
        "UPLOAD_MAX_RETRIES": "6",
        "UPLOAD_SESSION_DIR": str(tmp_path / "sessions"),
    }


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`upwell emulate openai` as a process with faults on; yields (base URL, data dir)."""
    data = tmp_path / "emu"
    proc = subprocess.Popen(
        [
            *UPWELL,
            "emulate",
            "openai",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--api-key-env",
            "EMU_KEY",
            "--fail-every",
            "4",
            "--drop-after",
            "300000",
            "--drop-every",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EMU_KEY": KEY, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the emulator listens (or exits)
        match = re.search(r"(http://\S+?) ", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        yield match.group(1), data
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("provider", ["openai", "kimi", "glm"])
def test_upload_then_files_list_get_content_rm(
    emulator: tuple[str, Path], tmp_path: Path, provider: str
) -> None:
    url, data = emulator
    env = provider_env(provider, url, tmp_path)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\n" + "Kimi and GLM extract this text.\n" * 20000, encoding="utf-8")
    out = upwell("upload", str(notes), "--to", provider, "--json", env=env)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.splitlines()[-1])
    assert last["stage"] == "complete"
    file_id = last["file_name"]
    assert file_id.startswith("file-")
    assert last["file_uri"] == f"{url}{ENV[provider][2]}/files/{file_id}"
    assert (data / "files" / f"{file_id}.bin").read_bytes() == notes.read_bytes()
    assert KEY not in out.stdout + out.stderr

    listed = upwell("files", "list", "--provider", provider, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["name"] for r in rows] == [file_id]
    assert rows[0]["size"] == notes.stat().st_size and rows[0]["filename"] == "notes.md"

    got = upwell("files", "get", file_id, "--to", provider, env=env)
    assert got.returncode == 0, got.stderr
    assert f"name: {file_id}" in got.stdout and "purpose: " in got.stdout

    if provider != "openai":  # Kimi and GLM extract text from file-extract files
        content = upwell("files", "content", file_id, "--provider", provider, env=env)
        assert content.returncode == 0, content.stderr
        assert content.stdout == notes.read_text(encoding="utf-8")
        as_json = upwell("files", "content", file_id, "--to", provider, "--json", env=env)
        assert json.loads(as_json.stdout) == {"name": file_id, "content": content.stdout}

    removed = upwell("files", "rm", file_id, "--to", provider, env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == f"deleted {file_id}"
    gone = upwell("files", "get", file_id, "--to", provider, env=env)
    assert gone.returncode == 1
    assert len(gone.stderr.strip().splitlines()) == 1 and "HTTP 404" in gone.stderr
    assert not any(KEY in s.read_text() for s in (tmp_path / "sessions").glob("*.json"))


def test_wrong_and_missing_keys_and_usage_errors(
    emulator: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = emulator
    src = make_file(tmp_path / "a.bin", 1000, seed=1)
    wrong = "sk-not-the-key-99999999"
    bad = upwell("upload", str(src), "--to", "glm", env=provider_env("glm", url, tmp_path, wrong))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "refused the API key" in bad.stderr and "ZHIPUAI_API_KEY" in bad.stderr
    assert wrong not in bad.stderr + bad.stdout
    listed = upwell(
        "files", "list", "--to", "openai", env=provider_env("openai", url, tmp_path, wrong)
    )
    assert listed.returncode == 1 and len(listed.stderr.strip().splitlines()) == 1
    assert wrong not in listed.stderr

    blank = {"OPENAI_API_KEY": "", "MOONSHOT_API_KEY": "", "ZHIPUAI_API_KEY": ""}
    for provider, (var, _, _) in ENV.items():
        missing = upwell("upload", str(src), "--to", provider, env=blank)
        assert missing.returncode == 2 and var in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1
    no_files = upwell("files", "list", "--provider", "kimi", env=blank)
    assert no_files.returncode == 2 and "MOONSHOT_API_KEY" in no_files.stderr
    kimi_env = provider_env("kimi", url, tmp_path)
    multipart = upwell("upload", str(src), "--to", "kimi", "--multipart", env=kimi_env)
    assert multipart.returncode == 2 and "Uploads API" in multipart.stderr
    purpose = upwell(
        "upload", str(src), "--to", "http://127.0.0.1:1/files/", "--purpose", "x", env={}
    )
    assert purpose.returncode == 2 and "--purpose" in purpose.stderr
    no_content = upwell(
        "files", "content", "files/abc", "--to", "gemini", env={"GEMINI_API_KEY": "k"}
    )
    assert no_content.returncode == 2 and "does not serve file content" in no_content.stderr
    bad_id = upwell("files", "get", "a b", "--to", "kimi", env=kimi_env)
    assert bad_id.returncode == 2 and "not a file id" in bad_id.stderr
    no_var = upwell("emulate", "openai", "--api-key-env", "UNSET_VAR_XYZ", env={})
    assert no_var.returncode == 2 and "UNSET_VAR_XYZ" in no_var.stderr


def test_a_file_over_the_providers_limit_fails_before_the_first_byte(tmp_path: Path) -> None:
    apps: list[web.Application] = []

    def make_app() -> web.Application:
        apps.append(create_openai_app(tmp_path / "emu", api_key=KEY))
        return apps[-1]

    big = tmp_path / "big.pdf"
    with big.open("wb") as fh:
        fh.truncate(100 * MiB + 1)  # Kimi takes 100 MB a file; sparse, never read
    with emulator_in_thread(make_app) as url:
        out = upwell("upload", str(big), "--to", "kimi", env=provider_env("kimi", url, tmp_path))
    assert out.returncode == 1
    assert "over the target's limit of 100 MiB" in out.stderr
    emu = apps[0][EMULATOR]
    assert emu.faults.chunk_requests == 0 and not emu.files


def test_multipart_below_the_limit_uses_the_uploads_api(tmp_path: Path) -> None:
    apps: list[web.Application] = []

    def make_app() -> web.Application:
        apps.append(create_openai_app(tmp_path / "emu", api_key=KEY))
        return apps[-1]

    src = make_file(tmp_path / "m.bin", 9 * MiB + 3, seed=2)
    with emulator_in_thread(make_app) as url:
        env = provider_env("openai", url, tmp_path)
        argv = ["upload", str(src), "--to", "openai", "--multipart", "--purpose", "batch"]
        out = upwell(*argv, "--chunk-size", "4MiB", "--json", env=env)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.splitlines()[-1])
    emu = apps[0][EMULATOR]
    (up,) = emu.uploads.values()
    assert up.upload.status == "completed" and emu.part_requests == 3
    f = emu.files[last["file_name"]]
    assert f.purpose == "batch"
    assert (tmp_path / "emu" / "files" / f"{f.id}.bin").read_bytes() == src.read_bytes()


def test_kill_9_mid_parts_then_the_same_command_sends_only_the_missing_parts(
    tmp_path: Path,
) -> None:
    faults = FaultPlan(stall_requests=frozenset({4}))  # the fourth part request hangs
    apps: list[web.Application] = []

    def make_app() -> web.Application:
        apps.append(create_openai_app(tmp_path / "emu", api_key=KEY, faults=faults))
        return apps[-1]

    src = make_file(tmp_path / "big.bin", 24 * MiB + 5, seed=3)
    with emulator_in_thread(make_app) as url:
        env = {
            **os.environ,
            **provider_env("openai", url, tmp_path),
            "UPWELL_FILES_MAX_SIZE": "4MiB",  # above this, the Uploads API (the real: 512 MB)
        }
        argv = ["upload", str(src), "--to", "openai", "--chunk-size", "4MiB", "--parallel", "1"]
        first = subprocess.Popen(
            [*UPWELL, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        try:
            assert faults.stalled.wait(30), "the upload never reached its fourth part"
        finally:
            first.kill()  # SIGKILL: no cleanup, no cancel; the session stays as it was
            first.wait()
        emu = apps[0][EMULATOR]
        assert emu.part_requests == 3
        sessions = list((tmp_path / "sessions").iterdir())
        assert sessions and all(KEY not in s.read_text() for s in sessions)
        second = upwell(*argv, "--json", env=env)
        assert second.returncode == 0, second.stderr
        last = json.loads(second.stdout.splitlines()[-1])
        assert last["stage"] == "complete"
        assert len(emu.uploads) == 1  # the same Upload, completed
        assert emu.part_requests == 7  # 3 before the kill, only the 4 missing after
        stored = tmp_path / "emu" / "files" / f"{last['file_name']}.bin"
        assert stored.read_bytes() == src.read_bytes()


def peak_rss_mib(argv: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *UPWELL, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
        env={**os.environ, **env},
    )
    result = json.loads(out.stdout)
    assert result["rc"] == 0, out.stderr
    return float(result["kib"]) / 1024


def test_peak_rss_stays_flat_for_one_post_and_for_64_mib_parts(tmp_path: Path) -> None:
    big = make_file(tmp_path / "big.bin", 96 * MiB, seed=5)
    small = make_file(tmp_path / "small.bin", 4 * MiB, seed=6)
    with emulator_in_thread(lambda: create_openai_app(tmp_path / "emu", api_key=KEY)) as url:
        env = {**provider_env("openai", url, tmp_path), "UPWELL_FILES_MAX_SIZE": "128MiB"}
        baseline = peak_rss_mib(["upload", str(small), "--to", "openai"], env)
        whole = peak_rss_mib(["upload", str(big), "--to", "openai"], env)
        parts = peak_rss_mib(
            [
                "upload",
                str(big),
                "--to",
                "openai",
                "--multipart",
                "--chunk-size",
                "64MiB",
                "--no-resume",
            ],
            env,
        )
    assert whole <= 64 and parts <= 64, (whole, parts)
    # 24 times the file, 64 MiB parts: about the same memory as 4 MiB in one request.
    assert max(whole, parts) - baseline < 12, (baseline, whole, parts)


def test_sessions_rm_ends_the_upload_a_killed_run_left(tmp_path: Path) -> None:
    faults = FaultPlan(stall_requests=frozenset({2}))  # the second part request hangs
    apps: list[web.Application] = []

    def make_app() -> web.Application:
        apps.append(create_openai_app(tmp_path / "emu", api_key=KEY, faults=faults))
        return apps[-1]

    src = make_file(tmp_path / "left.bin", 12 * MiB, seed=7)
    with emulator_in_thread(make_app) as url:
        env = {**provider_env("openai", url, tmp_path), "UPWELL_FILES_MAX_SIZE": "4MiB"}
        argv = ["upload", str(src), "--to", "openai", "--chunk-size", "4MiB", "--parallel", "1"]
        first = subprocess.Popen(
            [*UPWELL, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        try:
            assert faults.stalled.wait(30), "the upload never reached its second part"
        finally:
            first.kill()
            first.wait()
        listed = upwell("sessions", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        (session,) = [json.loads(line) for line in listed.stdout.splitlines()]
        removed = upwell("sessions", "rm", session["session_id"], env=env)
        assert removed.returncode == 0, removed.stderr
        (up,) = apps[0][EMULATOR].uploads.values()
        assert up.upload.status == "cancelled"
        assert not (tmp_path / "emu" / "uploads" / up.upload.id).exists()  # parts dropped
