"""Choosing the torch device and thread count from the config."""

from __future__ import annotations

import torch

from depthxai.errors import ConfigError


def resolve_device(name: str = "cpu") -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) -> a ``torch.device``.

    On CUDA, TF32 is turned off so that results match CPU float32 to ~1e-4 (see shared/reference/README.md).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("config key device: 'cuda' requested but no CUDA device is available; use 'cpu' or 'auto'")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif name != "cpu":
        raise ConfigError(f"config key device: {name!r} is not one of cpu, cuda, auto")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (Snakemake runs jobs side by side, one thread each by default)."""
    if threads:
        torch.set_num_threads(int(threads))
