"""A full disk is the server's problem, not the client's: 507, and nothing half-stored."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import TUS, MakeClient, create_upload, patch

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path, in_ci: bool) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real filesystem that really fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if in_ci:
            pytest.fail(f"CI must be able to mount a tmpfs (root): {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def data_dir(small_disk: Path) -> Path:
    """The server's data directory is the small disk (state and bytes both)."""
    return small_disk


async def test_a_patch_that_fills_the_disk_is_507_and_keeps_the_offset(
    make_client: MakeClient, small_disk: Path
) -> None:
    client: Any = await make_client()
    path = await create_upload(client, 8 * MiB)
    resp = await patch(client, path, 0, os.urandom(8 * MiB))
    assert resp.status == 507, await resp.text()
    assert "full" in await resp.text()
    head = await client.head(path, headers=TUS)
    assert head.headers["Upload-Offset"] == "0"
    assert (small_disk / "files" / path.rsplit("/", 1)[1]).stat().st_size == 0
