"""The Figure 1 panels file: per image the input as the network receives it, the ground truth, the prediction
and each method's map, all in the network's input frame (:class:`QualitativePanels`).

:func:`depthxai.evaluation.qualitative.qualitative_panels` computes them (PyTorch: the model card's crop and input
preparation) in the rule ``qualitative_panels``; the figure only reads the file, so this module needs NumPy
alone and the report layer stays free of PyTorch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from depthxai.errors import DataError
from depthxai.fileio import write_npz


def relevance_display(relevance: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Attribution magnitude scaled to [0, 1] for display: ``|r| / percentile(|r|)``, clipped (robust to a
    few extreme pixels); an all-zero map stays zero."""
    magnitude = np.abs(np.asarray(relevance, dtype=np.float64))
    scale = float(np.percentile(magnitude, percentile))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(magnitude.max())
    return np.clip(magnitude / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(magnitude)


@dataclass(frozen=True)
class QualitativePanel:
    """What Figure 1 shows of one image, all in the network's input frame ``(h, w)`` = ``card.input_size``.

    Attributes:
        image_id: the image.
        rgb: ``(h, w, 3)`` float in [0, 1], the input as the network receives it (crop, resize).
        ground_truth: ``(h, w)`` metres, NaN where there is no valid ground truth (outside the dataset's depth
            range or 0), nearest-neighbour resampled; ``None`` for an image without a depth file.
        prediction: ``(h, w)`` metres, bilinear from the network's output grid.
        relevance: ``{method: (h, w)}`` in [0, 1], see :func:`relevance_display`.
    """

    image_id: str
    rgb: np.ndarray
    ground_truth: np.ndarray | None
    prediction: np.ndarray
    relevance: dict[str, np.ndarray]


@dataclass(frozen=True)
class QualitativePanels:
    """The panels of one (dataset, model) and what the figure's title and colour bar need.

    Attributes:
        model: ``<arch>_<variant>`` of the model card.
        dataset: the dataset's name.
        percentile: the percentile of each map's magnitude shown as full relevance.
        panels: one :class:`QualitativePanel` per image, in display order.
    """

    model: str
    dataset: str
    percentile: float
    panels: list[QualitativePanel]

    @property
    def methods(self) -> list[str]:
        return list(self.panels[0].relevance) if self.panels else []

    @property
    def size(self) -> tuple[int, int]:
        """The input frame ``(h, w)``."""
        return (int(self.panels[0].rgb.shape[0]), int(self.panels[0].rgb.shape[1])) if self.panels else (0, 0)


def write_panels(path: str | os.PathLike[str], model: str, dataset: str, panels: Sequence[QualitativePanel],
                 percentile: float = 99.0) -> None:
    """Save the panels of one (dataset, ``model`` = ``<arch>_<variant>``) as one ``.npz`` (arrays exactly as
    computed, no rounding).

    Layout: ``ids (n,)``, ``methods (m,)``, ``rgb (n, h, w, 3)``, ``ground_truth (n, h, w)`` (NaN where invalid),
    ``has_ground_truth (n,)``, ``prediction (n, h, w)``, ``relevance (n, m, h, w)``, and the scalars ``model``,
    ``dataset``, ``percentile``.
    """
    if not panels:
        raise ValueError("no panels to write")
    methods = list(panels[0].relevance)
    h, w = panels[0].prediction.shape
    missing = np.full((h, w), np.nan, dtype=np.float32)
    write_npz(path,
              ids=np.asarray([p.image_id for p in panels]),
              methods=np.asarray(methods, dtype=str),
              rgb=np.stack([p.rgb for p in panels]),
              ground_truth=np.stack([missing if p.ground_truth is None else p.ground_truth for p in panels]),
              has_ground_truth=np.asarray([p.ground_truth is not None for p in panels]),
              prediction=np.stack([p.prediction for p in panels]),
              relevance=np.stack([np.stack([p.relevance[m] for m in methods]) for p in panels]),
              model=np.asarray(model), dataset=np.asarray(dataset),
              percentile=np.asarray(float(percentile)))


def read_panels(path: str | os.PathLike[str]) -> QualitativePanels:
    """Read what :func:`write_panels` wrote.

    Raises:
        DataError: the file is unreadable or lacks an array (names the file).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(i) for i in data["ids"]]
            methods = [str(m) for m in data["methods"]]
            rgb, ground_truth = data["rgb"], data["ground_truth"]
            has_ground_truth, prediction, relevance = data["has_ground_truth"], data["prediction"], data["relevance"]
            model, dataset, percentile = str(data["model"]), str(data["dataset"]), float(data["percentile"])
    except (OSError, KeyError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable Figure 1 panels ({exc}); rerun the qualitative_panels rule") from exc
    n = len(ids)
    if not (len(rgb) == len(ground_truth) == len(has_ground_truth) == len(prediction) == len(relevance) == n) or (
            relevance.ndim != 4 or relevance.shape[1] != len(methods)):
        raise DataError(f"{path}: Figure 1 panels with inconsistent array shapes; rerun the qualitative_panels rule")
    panels = [QualitativePanel(ids[k], rgb[k], ground_truth[k] if has_ground_truth[k] else None, prediction[k],
                               {m: relevance[k, j] for j, m in enumerate(methods)}) for k in range(n)]
    return QualitativePanels(model=model, dataset=dataset, percentile=percentile, panels=panels)
