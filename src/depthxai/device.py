"""Choosing the torch device and thread count from the config."""

from __future__ import annotations

import os

import torch

from depthxai.errors import ConfigError

#: Environment variable that turns on PyTorch's deterministic algorithms (see :func:`enable_determinism`).
DETERMINISTIC_ENV = "DEPTHXAI_DETERMINISTIC"
#: cuBLAS needs a fixed workspace configuration to be deterministic (CUDA >= 10.2); set unless already given.
CUBLAS_WORKSPACE = ":4096:8"
_MODES = {"": None, "0": None, "false": None, "no": None, "off": None,
          "1": "warn", "true": "warn", "yes": "warn", "on": "warn", "warn": "warn", "strict": "strict"}


def deterministic_mode() -> str | None:
    """The mode asked for by ``$DEPTHXAI_DETERMINISTIC``: ``None`` (unset/0), ``"warn"`` (1) or ``"strict"``.

    Raises:
        ConfigError: naming the variable, for any other value.
    """
    value = os.environ.get(DETERMINISTIC_ENV, "").strip().lower()
    if value not in _MODES:
        raise ConfigError(f"environment variable {DETERMINISTIC_ENV}={value!r}: use 1 (deterministic algorithms, "
                          "a warning for each operation that has none), strict (an error instead) or 0 (off)")
    return _MODES[value]


def enable_determinism(mode: str = "warn") -> None:
    """Make PyTorch pick deterministic kernels: ``torch.use_deterministic_algorithms``, deterministic cuDNN
    without autotuning, and a fixed cuBLAS workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts, so
    this must run before the first CUDA matrix product).

    ``mode="warn"`` keeps going where an operation has no deterministic CUDA kernel (e.g. the backward pass of
    bilinear interpolation, used by Saliency and IG), with a warning that names it; ``"strict"`` raises instead.
    """
    if mode not in ("warn", "strict"):
        raise ValueError(f"mode must be 'warn' or 'strict', got {mode!r}")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=mode == "warn")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) -> a ``torch.device``.

    On CUDA, TF32 is turned off so that results match CPU float32 to ~1e-4 (see shared/reference/README.md).
    With ``$DEPTHXAI_DETERMINISTIC`` set (1 or strict), deterministic algorithms are enabled as well
    (:func:`enable_determinism`); on CPU this changes nothing measurable, on CUDA it trades speed for
    bit-identical reruns.
    """
    mode = deterministic_mode()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key device: 'cuda' requested but no CUDA device is available; "
                              "use 'cpu' or 'auto'")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif name != "cpu":
        raise ConfigError(f"config key device: {name!r} is not one of cpu, cuda, auto")
    if mode is not None:
        enable_determinism(mode)
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (Snakemake runs jobs side by side, one thread each by default)."""
    if threads:
        torch.set_num_threads(int(threads))


def check_cpu_kernels(pins: dict[str, str]) -> None:
    """Check that torch runs its CPU kernels at the instruction set :func:`depthxai.runtime.pin_cpu_kernels` pinned.

    Args:
        pins: what ``pin_cpu_kernels`` returned (empty: nothing pinned, nothing to check).

    Raises:
        ConfigError: if torch runs at another instruction set (the CPU lacks the pinned one).
    """
    wanted = pins.get("ATEN_CPU_CAPABILITY")
    active = torch.backends.cpu.get_cpu_capability().lower()
    if wanted is not None and active != wanted:
        raise ConfigError(f"DEPTHXAI_CPU_ISA: torch runs its CPU kernels at {active.upper()}, not {wanted.upper()} "
                          "(this CPU lacks it); set DEPTHXAI_CPU_ISA to another value or to native")
