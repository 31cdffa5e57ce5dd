"""Bounded memory for long batch runs (``gspauth file``) on glibc.

A filing run allocates and frees buffers of megabytes all the time: 8 MiB file blocks, 2 MiB
chunk payloads, ~3.7 MB request bodies. glibc serves blocks above its mmap threshold with
their own mappings, returned to the system when freed — but it *raises* that threshold each
time such a block is freed (up to 32 MiB), after which the same buffers come from the heap
and its per-thread arenas, where they fragment and stay resident. Measured with
``benchmarks/bench_filing.py`` (1,000,000 invoices, 50 GSTINs): peak RSS 462–490 MB with the
adaptive threshold, 390–392 MB with it fixed at 1 MiB, and the 1,000,000-invoice peak no
higher than the 100,000-invoice one. The command line fixes it at 1 MiB for its own process;
``MALLOC_MMAP_THRESHOLD_`` in the environment (glibc's own setting) takes precedence.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["bound_large_allocations"]

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
#: Blocks of this many bytes or more are mapped on their own and unmapped when freed.
THRESHOLD = 1 << 20


def bound_large_allocations(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process.

    :returns: whether it was applied (``False`` off glibc, or when ``MALLOC_MMAP_THRESHOLD_``
        is set, which glibc has already applied).
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present only on glibc (musl has no such threshold)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold) == 1)
