"""The console script holds the GC off while modules load and turns it on for the work."""

from __future__ import annotations

import gc

from upwell.cli.run import hold_gc_for_startup, run_command


def test_the_gc_is_back_on_when_a_command_works() -> None:
    async def work() -> bool:
        return gc.isenabled()

    try:
        hold_gc_for_startup()
        assert not gc.isenabled()
        assert run_command(work()) is True
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what loaded before is out of the GC's way
    finally:
        gc.unfreeze()
        gc.enable()
