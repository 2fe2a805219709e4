"""Seeds for randomised tests: random each run, replayable by `UPWELL_TEST_SEED=N`.

The `seed` fixture (tests/conftest.py) records the seed it handed out; a failing test's report
ends with the command line that replays it.
"""

from __future__ import annotations

import os
import random

SEED_ENV = "UPWELL_TEST_SEED"


def pick_seed() -> int:
    """`$UPWELL_TEST_SEED` when set (to replay a failure), else a fresh random seed."""
    value = os.environ.get(SEED_ENV, "").strip()
    if value:
        return int(value)
    return random.randrange(1 << 30)


def replay_hint(seed: int, nodeid: str) -> str:
    return f"replay with: {SEED_ENV}={seed} python -m pytest '{nodeid}'"
