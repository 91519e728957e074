"""Process-wide memory allocator settings that make array-heavy jobs (rendering, training) faster.

numpy and torch allocate a fresh buffer for every temporary array. glibc's ``malloc`` serves buffers above
``M_MMAP_THRESHOLD`` (128 KiB, raised dynamically) with ``mmap`` and returns freed memory at the top of the heap
to the system once more than ``M_TRIM_THRESHOLD`` is free, so a loop over image-sized temporaries pays page faults
that zero the same memory again and again: on this project's CPU that made whole-image numpy code 2-7x slower
than the arithmetic needs. :func:`retain_freed_memory` keeps freed memory in the process for reuse instead.
Results are unaffected (allocation never changes a value); the resident size stays near its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Buffers up to this size come from the heap (glibc caps its dynamic threshold at 32 MiB on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Freed heap memory kept for reuse before any is returned to the system.
TRIM_THRESHOLD = 512 << 20


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Ask glibc's allocator to serve buffers up to ``mmap_threshold`` bytes from the heap and to keep up to
    ``trim_threshold`` bytes of freed memory (see the module docstring). Call it once, early in a job's process.

    Returns:
        whether the settings took effect (``False`` where the C library has no ``mallopt``: macOS, musl).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                   int(trim_threshold)))
