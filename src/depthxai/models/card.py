"""Model cards on disk: what a set of weights expects, returns and achieves (``card.json``)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthxai.fileio import write_json
from depthxai.models.registry import get_card
from depthxai.tidy import concat_tidy


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_model_card(out: str | Path, model: str, weights: str | Path, weights_source: str,
                     accuracy_files: Sequence[str | Path]) -> dict[str, Any]:
    """Write ``card.json``: the registry card, the weights' sha256 and source, and the mean test accuracy.

    Returns:
        The card as written.
    """
    accuracy = concat_tidy(accuracy_files)
    means = accuracy.groupby("metric")["value"].mean().sort_index()
    card = {
        **{k: v for k, v in dataclasses.asdict(get_card(model)).items() if k not in ("builder", "builder_kwargs")},
        "weights_file": Path(weights).name,
        "weights_sha256": sha256_file(weights),
        "weights_source": weights_source,
        # null where no image had valid ground truth (strict JSON: never a bare NaN)
        "accuracy": {name: float(value) if math.isfinite(value) else None for name, value in means.items()},
        "accuracy_n_images": int(accuracy["image_id"].nunique()) if not accuracy.empty else 0,
    }
    write_json(out, card)
    return card
