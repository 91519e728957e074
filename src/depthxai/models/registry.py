"""Model cards: every fact about a model that is not a weight (preprocessing, units, input size, range).

A model name is ``<arch>_<variant>_<dataset>``, e.g. ``meter_xxs_nyu`` or ``pixelformer_large07_kitti``.
The card fixes how images are prepared for the network and how its raw output becomes metres, so that
the official checkpoints and the models trained here on synthetic scenes go through the same code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from depthxai.errors import ConfigError

#: ImageNet channel statistics (RGB in [0, 1]) used by the NYU METER checkpoint and by PixelFormer.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: ``metric``: depth in metres after ``output_unit_m``; ``relative``: affine-invariant inverse depth (disparity-like,
#: larger = nearer, unknown scale and shift), as Depth Anything (relative) and MiDaS-style DPT return; align it to
#: ground truth with :mod:`depthxai.evaluation.align` before any metric.
OUTPUT_KINDS = ("metric", "relative")


@dataclass(frozen=True)
class ModelCard:
    """What a model expects and returns.

    Attributes:
        name: ``<arch>_<variant>_<dataset>``.
        arch: ``meter`` or ``pixelformer``.
        variant: architecture size (``xxs``, ``xs``, ``s`` for METER; ``large07``, ``base07``, ``tiny07``,
            ``nano07`` for PixelFormer).
        dataset: the dataset the weights belong to (``nyu``, ``kitti``, ``synthindoor``, ``synthroad``).
        input_size: (H, W) of the tensor fed to the network.
        imagenet_norm: whether RGB/255 is normalised with ``mean``/``std`` before the network.
        output_unit_m: metres per unit of the raw output (0.01: centimetres, 0.1: decimetres, 1: metres).
        min_depth, max_depth: the model's depth range in metres (predictions are clipped to it for metrics).
        input_crop: ``kb`` for the KITTI benchmark crop (bottom 352 rows, centred 1216 columns) taken from the
            full frame before resizing, else ``none``.
        expected_median_m: the range of the median predicted depth of a test split that the model's dataset makes
            plausible (indoor 0.5-8 m, road 3-60 m); a prediction stage outside it warns (wrong weights or card).
        builder: ``module:function`` that builds the bare network; ``builder_kwargs`` are passed to it.
        mean, std: per-channel statistics of the normalisation (RGB in [0, 1]); ImageNet's unless an adapter
            (:mod:`depthxai.models.adapters`) reads others from the model's image processor or card.
        output_kind: one of :data:`OUTPUT_KINDS`; ``metric`` for every registry model.
    """

    name: str
    arch: str
    variant: str
    dataset: str
    input_size: tuple[int, int]
    imagenet_norm: bool
    output_unit_m: float
    min_depth: float
    max_depth: float
    builder: str
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    input_crop: str = "none"
    expected_median_m: tuple[float, float] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output_kind: str = "metric"

    def __post_init__(self) -> None:
        if self.output_kind not in OUTPUT_KINDS:
            raise ConfigError(f"model {self.name!r}: output_kind must be one of {OUTPUT_KINDS}, "
                              f"got {self.output_kind!r}")


#: Plausible median predicted depth of a test split, by the kind of scene of a dataset (metres).
INDOOR_MEDIAN_M = (0.5, 8.0)
ROAD_MEDIAN_M = (3.0, 60.0)


_CARDS: dict[str, ModelCard] = {}


def register(card: ModelCard) -> ModelCard:
    if card.name in _CARDS:
        raise ValueError(f"model {card.name!r} registered twice")
    _CARDS[card.name] = card
    return card


def _register_defaults() -> None:
    # METER (Papa et al., 2023). Facts from ../shared/data/README.md: the NYU checkpoint takes
    # ImageNet-normalised RGB and returns centimetres; the KITTI one takes plain RGB/255 and returns decimetres.
    for variant in ("xxs", "xs", "s"):
        common: dict[str, Any] = dict(arch="meter", variant=variant, builder="depthxai.models.meter:build_meter",
                                      builder_kwargs={"variant": variant})
        register(ModelCard(name=f"meter_{variant}_nyu", dataset="nyu", input_size=(192, 256), imagenet_norm=True,
                           output_unit_m=0.01, min_depth=1e-3, max_depth=10.0, expected_median_m=INDOOR_MEDIAN_M,
                           **common))
        register(ModelCard(name=f"meter_{variant}_kitti", dataset="kitti", input_size=(192, 636),
                           imagenet_norm=False, output_unit_m=0.1, min_depth=1e-3, max_depth=80.0,
                           expected_median_m=ROAD_MEDIAN_M, **common))
        # Embedded default: same preprocessing and units as the real counterpart, trained on synthetic scenes.
        register(ModelCard(name=f"meter_{variant}_synthindoor", dataset="synthindoor", input_size=(192, 256),
                           imagenet_norm=True, output_unit_m=0.01, min_depth=1e-3, max_depth=10.0,
                           expected_median_m=INDOOR_MEDIAN_M, **common))
        register(ModelCard(name=f"meter_{variant}_synthroad", dataset="synthroad", input_size=(128, 448),
                           imagenet_norm=False, output_unit_m=0.1, min_depth=1e-3, max_depth=80.0,
                           expected_median_m=ROAD_MEDIAN_M, **common))
    # PixelFormer (Agarwal & Arora, WACV 2023): ImageNet-normalised input, metres out, NYU at full 480x640,
    # KITTI on the KB crop 352x1216. The nano07 encoder is our small configuration for the embedded default.
    for variant in ("large07", "base07", "tiny07", "nano07"):
        common = dict(arch="pixelformer", variant=variant, imagenet_norm=True, output_unit_m=1.0, min_depth=1e-3,
                      builder="depthxai.models.pixelformer:build_pixelformer")
        register(ModelCard(name=f"pixelformer_{variant}_nyu", dataset="nyu", input_size=(480, 640), max_depth=10.0,
                           builder_kwargs={"version": variant, "max_depth": 10.0}, expected_median_m=INDOOR_MEDIAN_M,
                           **common))
        register(ModelCard(name=f"pixelformer_{variant}_kitti", dataset="kitti", input_size=(352, 1216),
                           max_depth=80.0, input_crop="kb", builder_kwargs={"version": variant, "max_depth": 80.0},
                           expected_median_m=ROAD_MEDIAN_M, **common))
        register(ModelCard(name=f"pixelformer_{variant}_synthindoor", dataset="synthindoor", input_size=(192, 256),
                           max_depth=10.0, builder_kwargs={"version": variant, "max_depth": 10.0},
                           expected_median_m=INDOOR_MEDIAN_M, **common))
        register(ModelCard(name=f"pixelformer_{variant}_synthroad", dataset="synthroad", input_size=(128, 448),
                           max_depth=80.0, builder_kwargs={"version": variant, "max_depth": 80.0},
                           expected_median_m=ROAD_MEDIAN_M, **common))


_register_defaults()


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_CARDS)


def get_card(name: str) -> ModelCard:
    """The card of a registered model.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    try:
        return _CARDS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def build_model(name: str) -> nn.Module:
    """Build the bare network of a registered model (random weights, train mode as PyTorch leaves it).

    Returns:
        The ``nn.Module`` whose ``state_dict`` matches the official checkpoint layout of that architecture.
    """
    card = get_card(name)
    module_name, func_name = card.builder.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    model: nn.Module = builder(**card.builder_kwargs)
    return model
