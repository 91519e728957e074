"""Model cards on disk: what a set of weights expects, returns and achieves (``card.json``)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthxai.fileio import write_json
from depthxai.models.registry import ModelCard, get_card
from depthxai.tidy import concat_tidy


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_model_card(out: str | Path, model: str, weights: str | Path | None, weights_source: str,
                     accuracy_files: Sequence[str | Path], card: ModelCard | None = None,
                     alignment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``card.json``: the model card, the weights' sha256 and source, and the mean test accuracy.

    Args:
        model: a registry name, whose card is read from the registry unless ``card`` is given.
        weights: the state dict file; None for a model without one (``hf:``: its weights come with its source).
        weights_source: ``train``, a downloads key, a file, or an ``hf:`` source.
        card: the card of an adapted model (``hf:``/``module:``, as loaded). Its unbounded depth range (``inf``) is
            written as ``null`` (strict JSON).
        alignment: for a relative model, how its accuracy was aligned to the ground truth (``accuracy_alignment``).

    Returns:
        The card as written.
    """
    accuracy = concat_tidy(accuracy_files)
    means = accuracy.groupby("metric")["value"].mean().sort_index()
    model_card = card if card is not None else get_card(model)
    fields = {k: v for k, v in dataclasses.asdict(model_card).items() if k not in ("builder", "builder_kwargs")}
    record = {
        **{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in fields.items()},
        "weights_file": Path(weights).name if weights is not None else None,
        "weights_sha256": sha256_file(weights) if weights is not None else None,
        "weights_source": weights_source,
        # null where no image had valid ground truth (strict JSON: never a bare NaN)
        "accuracy": {name: float(value) if math.isfinite(value) else None for name, value in means.items()},
        "accuracy_n_images": int(accuracy["image_id"].nunique()) if not accuracy.empty else 0,
    }
    if model_card.output_kind == "relative" and alignment is not None:
        record["accuracy_alignment"] = dict(alignment)
    write_json(out, record)
    return record
