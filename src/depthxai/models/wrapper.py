"""One interface for every depth network: RGB in [0, 1] at the model's input size -> depth in metres.

Attribution, perturbation and evaluation all see a :class:`DepthModel`: the ImageNet normalisation, the
unit of the raw output and the upsampling live here, driven by the :class:`ModelCard`, so that gradients
are taken with respect to the plain RGB image a person can look at and perturb.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthxai.data.frames import frame_crop_box, prepare_rgb
from depthxai.errors import DataError
from depthxai.models.checkpoint import load_weights
from depthxai.models.registry import ModelCard, build_model, get_card


class DepthModel(nn.Module):
    """A network with its card: ``forward(rgb01)`` returns metric depth.

    Args:
        net: the bare network (``build_model(card.name)``).
        card: the model card.
    """

    mean: Tensor  # (1, 3, 1, 1) buffer
    std: Tensor  # (1, 3, 1, 1) buffer

    def __init__(self, net: nn.Module, card: ModelCard) -> None:
        super().__init__()
        self.net = net
        self.card = card
        #: the checkpoint the weights came from (named in errors and warnings), None for weights not from a file
        self.weights_path: str | None = None
        self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def raw(self, rgb01: Tensor) -> Tensor:
        """The network's raw output (native units, native resolution) for RGB in [0, 1], shape ``(B, 3, H, W)``."""
        x = (rgb01 - self.mean) / self.std if self.card.imagenet_norm else rgb01
        out: Tensor = self.net(x)
        return out

    def native(self, rgb01: Tensor) -> Tensor:
        """Depth in metres at the network's own output resolution, ``(B, 1, h, w)`` (not resized, not clipped)."""
        return self.raw(rgb01) * self.card.output_unit_m

    def forward(self, rgb01: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        """Depth in metres.

        Args:
            rgb01: ``(B, 3, H, W)`` float RGB in [0, 1], usually at ``card.input_size``.
            out_size: (H', W') of the returned map; default the input's (H, W). The raw output is converted to
                metres first and then resized bilinearly (``align_corners=False``), as the official evaluation does.

        Returns:
            ``(B, 1, H', W')`` depth in metres (not clipped).
        """
        size = tuple(rgb01.shape[-2:]) if out_size is None else tuple(out_size)
        return resize_depth(self.native(rgb01), size)


def resize_depth(depth: Tensor, size: tuple[int, ...]) -> Tensor:
    """Bilinear resize (``align_corners=False``) of ``(B, 1, h, w)`` depth to ``size``; a no-op at equal size."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth, size=tuple(size), mode="bilinear", align_corners=False)


def load_depth_model(name: str, weights: str | Path | None = None, device: str | torch.device = "cpu") -> DepthModel:
    """Build ``name``, load ``weights`` strictly (``weights_only=True``) if given, and return it in eval mode."""
    card = get_card(name)
    net = build_model(name)
    if weights is not None:
        load_weights(net, weights)
    model = DepthModel(net, card).to(device).eval()
    model.weights_path = str(weights) if weights is not None else None
    return model


def crop_box(card: ModelCard, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (top, left, height, width) region of a full frame that the model sees (the whole frame unless KB crop)."""
    return frame_crop_box(card.input_crop, image_size)


def prepare_input(rgb: np.ndarray, card: ModelCard) -> Tensor:
    """Turn an image into the network input frame: ``uint8 (H, W, 3)`` -> float ``(3, h, w)`` RGB in [0, 1]
    (:func:`depthxai.data.frames.prepare_rgb` at the card's input size and crop)."""
    return prepare_rgb(rgb, card.input_size, card.input_crop)


@torch.no_grad()
def predict_image(model: DepthModel, rgb: np.ndarray, name: str = "the image") -> np.ndarray:
    """Depth in metres at the image's own resolution, ``float32 (H, W)``.

    With a KB crop, the region outside the crop is 0 (no prediction), as in the official KITTI evaluation.

    Raises:
        DataError: naming ``name``, where the model predicts NaN or inf (never clipped into a plausible depth).
    """
    device = next(model.parameters()).device
    top, left, ch, cw = crop_box(model.card, rgb.shape[:2])
    x = prepare_input(rgb, model.card)[None].to(device)
    depth = model(x, out_size=(ch, cw))[0, 0].cpu().numpy()
    if not np.isfinite(depth).all():
        raise DataError(f"{name}: the model {model.card.name} predicts non-finite depth (NaN/inf); check its weights "
                        f"({model.weights_path or 'not from a file'})")
    if (ch, cw) == rgb.shape[:2]:
        return depth.astype(np.float32)
    full = np.zeros(rgb.shape[:2], dtype=np.float32)
    full[top : top + ch, left : left + cw] = depth
    return full


def load_inputs(model: DepthModel, data_root: str | Path, ids: list[str]) -> Tensor:
    """The network inputs ``(N, 3, h, w)`` (RGB in [0, 1], on the model's device) of images of a prepared dataset."""
    from depthxai.data.io import read_rgb, sample_paths

    device = next(model.parameters()).device
    return torch.stack([prepare_input(read_rgb(sample_paths(data_root, i)[0]), model.card) for i in ids]).to(device)
