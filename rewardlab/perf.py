"""Process-wide settings that make rewardlab's commands faster on a CPU; the command line applies them.

glibc's malloc serves every allocation above 128 KiB (rising with use) from fresh ``mmap`` pages and
returns them on ``free``; an activation tensor is such an allocation, so each forward pays a page
fault per 4 KiB it writes. Keeping freed memory for reuse (allocations up to 32 MiB from the heap,
trim only above 1 GiB free, grow the heap 64 MiB at a time) removes most of that: scoring the CPU
benchmark's 4.5M model ran 1.2× faster (bench/results/score.md). The cost is that up to 1 GiB of freed
memory stays with the process until it exits. ``REWARDLAB_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
MALLOC_SETTINGS = {M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 2**30, M_TOP_PAD: 64 * 2**20}


def tune_allocator() -> bool:
    """Apply ``MALLOC_SETTINGS`` with glibc's ``mallopt``; True when applied (glibc only, else a no-op)."""
    if os.environ.get("REWARDLAB_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(k, v) == 1 for k, v in MALLOC_SETTINGS.items())
