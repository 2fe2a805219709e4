"""Process-wide memory tuning for the command line (the library never changes it).

glibc raises its mmap threshold each time a large block is freed, so after the first few 1 MiB
slices every later one comes from a per-thread arena and stays there; with several reader
threads that is 10+ MiB of resident memory doing nothing. Fixing the threshold sends slices
back to the OS as soon as they are sent.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3


def return_large_buffers_to_os(threshold: int = 256 * 1024) -> bool:
    """Make glibc serve blocks of `threshold` bytes or more by mmap; False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The symbols already loaded into this process (libc among them): no library search,
        # which would run `ldconfig -p` and cost a tenth of a second at every start.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
