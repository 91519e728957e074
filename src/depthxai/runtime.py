"""Process-wide settings of a job, made first thing in its process: memory allocator and CPU kernels.

* :func:`retain_freed_memory`: numpy and torch allocate a fresh buffer for every temporary array. glibc's
  ``malloc`` serves buffers above ``M_MMAP_THRESHOLD`` (128 KiB, raised dynamically) with ``mmap`` and returns
  freed memory at the top of the heap to the system once more than ``M_TRIM_THRESHOLD`` is free, so a loop over
  image-sized temporaries pays page faults that zero the same memory again and again: on this project's CPU that
  made whole-image numpy code 2-7x slower than the arithmetic needs. Results are unaffected (allocation never
  changes a value); the resident size stays near its peak.
* :func:`pin_cpu_kernels`: torch's CPU kernels (ATen's vectorised loops, oneDNN's convolutions, MKL's matrix
  products) each pick the widest instruction set the CPU has, and AVX2 and AVX-512 kernels add in different
  orders, so the same training writes different weights on different machines. Pinning one instruction set makes
  them equal. The libraries read their variables when torch loads, so this must run before ``import torch``.

This module does not import torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

from depthxai.errors import ConfigError

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


#: Environment variable naming the instruction set that training jobs pin their CPU kernels to (``native``: no
#: pin, each library picks the widest the CPU has).
CPU_ISA_ENV = "DEPTHXAI_CPU_ISA"
#: The pin used when ``$DEPTHXAI_CPU_ISA`` is unset: AVX2, which every x86-64 CPU of the last decade has.
DEFAULT_CPU_ISA = "avx2"
#: Per pinned instruction set, the variables that fix each CPU kernel library's code path: ATen's vectorised
#: kernels (``ATEN_CPU_CAPABILITY``: reductions in softmax, layer norm, sums run in AVX2 or AVX-512 lanes),
#: oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``: JIT kernels block channels by the vector width) and MKL's
#: matrix products (``MKL_CBWR``: conditional numerical reproducibility). MKL and oneDNN read theirs when torch
#: loads, so they must be set before ``import torch``.
CPU_KERNEL_PINS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
}


def pin_cpu_kernels(isa: str | None = None) -> dict[str, str]:
    """Pin the CPU kernels of torch, oneDNN and MKL to one instruction set (:data:`CPU_KERNEL_PINS`), so that a
    training job computes the same floating-point operations in the same order, and writes the same weights, on
    every x86-64 machine that has that instruction set, whatever wider one it also has (AVX-512). Call it before
    ``import torch``.

    Args:
        isa: a key of :data:`CPU_KERNEL_PINS` or ``native``; ``None``: ``$DEPTHXAI_CPU_ISA``, else
            :data:`DEFAULT_CPU_ISA`.

    Returns:
        the environment variables set (empty for ``native`` and on CPUs other than x86-64).

    Raises:
        ConfigError: for an unknown instruction set (whether the CPU has it: :func:`depthxai.device.check_cpu_kernels`
            once torch is loaded; this module stays free of torch, so the rendering job can use it).
        RuntimeError: if torch was imported before (with other settings).
    """
    isa = (isa or os.environ.get(CPU_ISA_ENV) or DEFAULT_CPU_ISA).strip().lower()
    if isa == "native" or platform.machine().lower() not in ("x86_64", "amd64"):
        return {}  # the pins name x86-64 instruction sets; other CPUs keep their own kernels
    if isa not in CPU_KERNEL_PINS:
        raise ConfigError(f"environment variable {CPU_ISA_ENV}={isa!r}: use one of {', '.join(CPU_KERNEL_PINS)} or "
                          "native (no pin)")
    pins = CPU_KERNEL_PINS[isa]
    if "torch" in sys.modules and any(os.environ.get(k) != v for k, v in pins.items()):
        raise RuntimeError("pin_cpu_kernels must run before torch is imported (MKL and oneDNN read their "
                           "variables when torch loads)")
    os.environ.update(pins)
    return dict(pins)
