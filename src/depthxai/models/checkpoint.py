"""Loading checkpoints safely (``weights_only=True``) and strictly, with errors that name the file."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from depthxai.errors import CheckpointError
from depthxai.fileio import atomic_path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` without executing any code.

    Accepts a bare state dict, or ``{"model": state_dict}`` / ``{"state_dict": state_dict}`` as saved by the
    official PixelFormer and common trainers; a leading ``module.`` (``DataParallel``) is stripped from keys.

    Raises:
        CheckpointError: naming the file if it is missing, truncated, unsafe (a pickle that would run code is
            refused by ``weights_only`` loading) or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; "
                              "download it (snakemake rule 'download') or pass --weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused by safe loading (weights_only=True): it contains objects other than tensors ({exc}). "
            "Only plain state dicts are accepted."
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({exc}); download it again") from exc
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    for key, tensor in obj.items():  # a diverged training or a corrupt copy: refuse, never predict garbage from it
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: tensor {key!r} holds {bad} NaN/inf value(s) of {tensor.numel()}; the "
                                  "checkpoint is broken (a diverged training?): train or download it again")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def save_state_dict(path: str | Path, state: Mapping[str, torch.Tensor]) -> None:
    """Write a state dict atomically, so that equal tensors always give equal bytes (and an equal sha256).

    ``torch.save(obj, path)`` names the records inside its zip after the file, and an atomic write's file is a
    temporary with a random name: the same weights would then differ from run to run. Saving through an open
    handle uses torch's fixed record name instead.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(dict(state), fh)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``model`` strictly: every key present, none extra, every shape equal; else nothing loads.

    Returns:
        ``model``, with the weights loaded, in eval mode.

    Raises:
        CheckpointError: listing missing and unexpected keys and shape mismatches (first ten of each).
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{more}")
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__}; nothing was loaded. " + "; ".join(parts)
            + ". Check that the checkpoint belongs to this model name (architecture and variant)."
        )
    model.load_state_dict(state, strict=True)
    return model.eval()
