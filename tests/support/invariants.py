"""What must hold in an `upwell serve` data directory whatever happened to it (a crash, a
kill -9, a flaky link): read straight from its SQLite file and its files, not over HTTP."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def check_data_dir(data_dir: Path, expected_sha256: set[str]) -> dict[str, int]:
    """Assert that no record's offset is ahead of the bytes on disk, and that every complete
    upload that is not a part holds bytes whose SHA-256 is one of `expected_sha256` (the
    files the test uploaded). Returns counts: records, complete records, complete files
    (complete records that are not parts)."""
    db = sqlite3.connect(f"file:{data_dir / 'upwell.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, upload_length, upload_offset, concat, parts, completed, sha256 FROM uploads"
        ).fetchall()
    finally:
        db.close()
    files = data_dir / "files"
    counts = {"uploads": 0, "complete": 0, "files": 0}
    for upload_id, length, offset, concat, _parts, completed, sha256 in rows:
        counts["uploads"] += 1
        assert length is None or offset <= length, (upload_id, offset, length)
        if concat == "final":
            parts_dir = files / f"{upload_id}.parts"
            segments = sorted(parts_dir.iterdir()) if parts_dir.is_dir() else []
            if completed:
                assert segments, f"final upload {upload_id} is complete without its parts"
        else:
            segments = [files / upload_id]
            size = segments[0].stat().st_size
            # Bytes past the offset (written, never acknowledged) are allowed until the next
            # write cuts them; an offset past the bytes is a lie to the client.
            assert offset <= size, f"upload {upload_id}: offset {offset} but {size} bytes on disk"
        if completed:
            counts["complete"] += 1
            got = _sha256(segments)
            if sha256 is not None:
                assert got == sha256, f"upload {upload_id}: its recorded SHA-256 is not its bytes'"
            if concat != "partial":
                counts["files"] += 1
                assert got in expected_sha256, f"upload {upload_id} is complete with other bytes"
    return counts
