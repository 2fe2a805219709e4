"""Start-up of the `upwell` console script: the cyclic GC held off while modules load.

Loading aiohttp and upwell creates a few hundred thousand objects that live as long as the
process. With the GC on, it traverses them over and over while they load: about 0.1 s of a
0.4 s start (measured on this project's 2-core machine). The console script turns the GC off
before anything loads; `run_command` turns it back on, with everything loaded so far frozen
out of its view, as a command's async work begins. Every command that works for long goes
through `run_command`; a short one may end with the GC still off, which costs nothing.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def hold_gc_for_startup() -> None:
    gc.disable()


def run_command(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, with the GC back on (see the module's docstring)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
    return asyncio.run(work)
