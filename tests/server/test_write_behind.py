"""Write-behind: while a body streams, the file store asks the kernel to start writing what it
has written so far, so the fsync before the answer has little left to wait for."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from upwell.server.ids import new_upload_id
from upwell.server.storage.files import WRITE_BEHIND, FileByteStore, _start_writeback

MiB = 1024 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
async def test_writeback_starts_as_the_body_streams_and_the_bytes_stay_exact(
    tmp_path: Path,
) -> None:
    assert _start_writeback is not None
    store = await FileByteStore.open(tmp_path / "files", threads=2)
    upload_id = new_upload_id()
    await store.create(upload_id)
    writer = await store.open_writer(upload_id, 0)
    blocks = [os.urandom(4 * MiB) for _ in range(5)]
    for block in blocks[:-1]:
        await writer.write([block])
    await writer.write([])  # waits for the batch before it to be written
    # Writeback was started for all but the last few MiB, before the request ended.
    assert writer._flushed >= 16 * MiB - WRITE_BEHIND
    assert writer._flushed >= WRITE_BEHIND
    appended = await writer.finish([blocks[-1]])
    assert appended.kept == 20 * MiB
    assert (tmp_path / "files" / upload_id).read_bytes() == b"".join(blocks)
    await store.close()
