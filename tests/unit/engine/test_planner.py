import pytest

from upwell.engine.planner import (
    MAX_APPEND_PARTS,
    MiB,
    auto_chunk_size,
    effective_chunk_size,
    plan_upload,
)
from upwell.targets.capabilities import Capabilities

SEQ = Capabilities()
PAR = Capabilities(parallel_parts=True)


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 1 * MiB),
        (9 * MiB, 1 * MiB),
        (50 * MiB, 5 * MiB),
        (500 * MiB, 10 * MiB),
        (4096 * MiB, 20 * MiB),
    ],
)
def test_auto_chunk_size_follows_the_seed_table(size: int, chunk: int) -> None:
    assert auto_chunk_size(size) == chunk


def test_chunks_cover_the_file_exactly_once() -> None:
    size = 10 * MiB + 123
    plan = plan_upload(size, SEQ, 3 * MiB, 1)
    chunks = plan.chunks
    assert [c.offset for c in chunks] == [0, 3 * MiB, 6 * MiB, 9 * MiB]
    assert sum(c.size for c in chunks) == size
    assert chunks[-1].end == size
    assert len(plan.parts) == 1


def test_empty_file_has_one_empty_part_and_no_chunks() -> None:
    plan = plan_upload(0, PAR, None, 4)
    assert plan.chunks == ()
    assert len(plan.parts) == 1 and plan.parts[0].size == 0


def test_granularity_rounds_the_chunk_size_up() -> None:
    caps = Capabilities(granularity=8 * MiB)
    assert effective_chunk_size(100 * MiB, caps, 5 * 1000 * 1000) == 8 * MiB
    assert effective_chunk_size(100 * MiB, caps, 9 * MiB) == 16 * MiB


def test_max_parts_grows_the_chunk_size() -> None:
    caps = Capabilities(parallel_parts=True, append=False, max_parts=10)
    assert effective_chunk_size(100 * MiB, caps, 1 * MiB) >= 10 * MiB


@pytest.mark.parametrize("chunks", [2, 11, 39, 205, 1000, 20_000])
def test_appendable_parallel_parts_are_contiguous_runs_that_shrink_to_one_chunk(
    chunks: int,
) -> None:
    size = (chunks - 1) * MiB + 5
    plan = plan_upload(size, PAR, 1 * MiB, 4)
    assert plan.parts[0].offset == 0
    for a, b in zip(plan.parts, plan.parts[1:], strict=False):
        assert a.end == b.offset
        assert len(a.chunks) >= len(b.chunks)  # big first, so streams finish together
    assert plan.parts[-1].end == size
    assert sum(len(p.chunks) for p in plan.parts) == chunks
    assert [p.index for p in plan.parts] == list(range(len(plan.parts)))
    assert len(plan.parts) <= MAX_APPEND_PARTS
    if chunks <= 1000:
        # The tail is fine-grained: no stream is left with three chunks while others idle.
        assert all(len(p.chunks) <= 3 for p in plan.parts[-8:])


def test_the_part_layout_does_not_depend_on_the_stream_count() -> None:
    """A resumed run rebuilds the journaled layout whatever its parallelism."""
    size = 300 * MiB + 7
    layouts = {
        tuple((p.offset, p.size) for p in plan_upload(size, PAR, 2 * MiB, n).parts)
        for n in (2, 3, 8, 64)
    }
    assert len(layouts) == 1
    assert len(plan_upload(size, PAR, 2 * MiB, 1).parts) == 1


def test_atomic_parts_are_one_chunk_each() -> None:
    caps = Capabilities(parallel_parts=True, append=False, min_part_size=5 * MiB)
    plan = plan_upload(12 * MiB, caps, 1 * MiB, 3)
    assert [p.size for p in plan.parts] == [5 * MiB, 5 * MiB, 2 * MiB]


def test_sequential_target_gets_one_part_whatever_the_parallelism() -> None:
    plan = plan_upload(50 * MiB, SEQ, 1 * MiB, 8)
    assert len(plan.parts) == 1


def test_a_file_within_whole_file_max_is_one_part_of_one_chunk() -> None:
    caps = Capabilities(parallel_parts=True, append=False, whole_file_max=40 * MiB)
    plan = plan_upload(40 * MiB, caps, 1 * MiB, 8)
    assert [(p.offset, p.size, len(p.chunks)) for p in plan.parts] == [(0, 40 * MiB, 1)]
    assert plan.chunk_size == 40 * MiB and not plan.parallel
    assert plan_upload(0, caps, None, 8).chunks == ()
    bigger = plan_upload(40 * MiB + 1, caps, 8 * MiB, 8)
    assert len(bigger.parts) == 6 and all(len(p.chunks) == 1 for p in bigger.parts)


def test_atomic_parts_stay_one_chunk_each_even_one_at_a_time() -> None:
    caps = Capabilities(parallel_parts=True, append=False, max_chunk_size=4 * MiB)
    plan = plan_upload(10 * MiB, caps, 8 * MiB, 1)
    assert [p.size for p in plan.parts] == [4 * MiB, 4 * MiB, 2 * MiB]
    assert all(len(p.chunks) == 1 for p in plan.parts)
