"""Turn (file size, target capabilities, settings) into parts and chunks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..targets.capabilities import Capabilities

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def auto_chunk_size(file_size: int) -> int:
    """The seed's table: small chunks for small files, bigger ones as files grow."""
    if file_size < 10 * MiB:
        return 1 * MiB
    if file_size < 100 * MiB:
        return 5 * MiB
    if file_size < 1 * GiB:
        return 10 * MiB
    return 20 * MiB


@dataclass(frozen=True)
class Chunk:
    """One request's worth of bytes: [offset, offset + size) of the file."""

    index: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Part:
    """A run of chunks the target stores as one unit (the whole file, or one parallel part)."""

    index: int
    offset: int
    size: int
    chunks: tuple[Chunk, ...]

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Plan:
    file_size: int
    chunk_size: int
    parts: tuple[Part, ...]

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(c for p in self.parts for c in p.chunks)

    @property
    def parallel(self) -> bool:
        return len(self.parts) > 1


def effective_chunk_size(file_size: int, caps: Capabilities, requested: int | None) -> int:
    """The chunk size the target will accept, as close to the request as its rules allow."""
    size = requested if requested else auto_chunk_size(file_size)
    if caps.max_chunk_size is not None:
        size = min(size, caps.max_chunk_size)
    if not caps.append:
        size = max(size, caps.min_part_size)
    if caps.max_parts is not None and file_size > 0:
        size = max(size, math.ceil(file_size / caps.max_parts))
    g = max(1, caps.granularity)
    size = max(g, math.ceil(size / g) * g)
    return size


def plan_upload(
    file_size: int, caps: Capabilities, chunk_size: int | None, max_parallel: int
) -> Plan:
    """Split a file into parts (what goes in parallel) and chunks (what is journaled).

    With `max_parallel` > 1 and a target that takes parallel parts, the parts are a queue that
    streams pull from (how many streams is the pipeline's business); otherwise one part.
    """
    if caps.whole_file_max is not None and file_size <= caps.whole_file_max:
        whole = (Chunk(0, 0, file_size),) if file_size else ()
        return Plan(file_size, file_size, (Part(0, 0, file_size, whole),))
    size = effective_chunk_size(file_size, caps, chunk_size)
    count = max(1, math.ceil(file_size / size)) if file_size else 0
    chunks = [
        Chunk(index=i, offset=i * size, size=min(size, file_size - i * size)) for i in range(count)
    ]
    if not caps.append and count > 1:
        # A part is sent whole in one request: one chunk per part, whatever the parallelism.
        parts = tuple(Part(c.index, c.offset, c.size, (c,)) for c in chunks)
        return Plan(file_size, size, parts)
    if not caps.parallel_parts or max_parallel <= 1 or count <= 1:
        return Plan(file_size, size, (Part(0, 0, file_size, tuple(chunks)),))
    parts_list = _guided_parts(chunks)
    if min(p.size for p in parts_list[:-1]) < caps.min_part_size:
        return Plan(file_size, size, (Part(0, 0, file_size, tuple(chunks)),))
    return Plan(file_size, size, tuple(parts_list))


#: Appendable parts shrink as the file goes: each takes 1/GUIDE of the chunks still unassigned,
#: so streams pulling parts from a queue all finish near the same time (the last parts are one
#: chunk each), while the final concatenation lists at most about MAX_APPEND_PARTS parts.
GUIDE = 16
MAX_APPEND_PARTS = 64


def _guided_parts(chunks: list[Chunk]) -> list[Part]:
    """Contiguous runs of chunks, big first and one chunk at the end (guided self-scheduling).

    The layout depends on the chunks only, not on how many streams send it, so a later run
    resuming the same parts at whatever parallelism rebuilds exactly the same layout.
    """
    floor = 1  # the fewest chunks in a part: grows only for files of very many chunks
    while True:
        parts = _runs(chunks, floor)
        if len(parts) <= MAX_APPEND_PARTS:
            return parts
        floor += max(1, floor // 4)


def _runs(chunks: list[Chunk], floor: int) -> list[Part]:
    count = len(chunks)
    parts: list[Part] = []
    start = 0
    while start < count:
        n = min(count - start, max(floor, math.ceil((count - start) / GUIDE)))
        run = tuple(chunks[start : start + n])
        parts.append(Part(len(parts), run[0].offset, run[-1].end - run[0].offset, run))
        start += n
    return parts
