"""What a target can do; the engine adapts to this and never asks which provider it is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """A target's declared abilities and limits.

    - `parallel_parts`: parts of one file may be sent at the same time.
    - `append`: a part can be extended by successive requests at an offset, and the target can
      say how much of a part it holds (tus, Google resumable); otherwise a part is sent whole
      in one request and retried whole (S3, OpenAI Uploads).
    - `granularity`: every chunk but the last must be a multiple of this.
    - `min_part_size`: every part but the last must be at least this.
    - `whole_file_max`: a file of at most this size goes as one request (one part, one chunk),
      as a files API's single POST takes it.
    - `file_digests`: whole-file digests (hashlib names) the target needs to finish a file
      sent in parts, computed in the same read of the file as its SHA-256 (a file sent whole
      in one request gets none).
    - `part_digests`: the target may compare each part's SHA-256 (`Body.part_sha256`, on the
      request that ends the part) with what it stored, so the engine computes it.
    """

    parallel_parts: bool = False
    append: bool = True
    resume: bool = True
    compression: tuple[str, ...] = ()
    checksum_algorithms: tuple[str, ...] = ()
    max_size: int | None = None
    min_part_size: int = 1
    granularity: int = 1
    max_parts: int | None = None
    max_chunk_size: int | None = None
    whole_file_max: int | None = None
    file_digests: tuple[str, ...] = ()
    part_digests: bool = False
