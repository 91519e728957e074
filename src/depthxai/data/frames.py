"""Frames at a network's input size: the crop, the resize, and a whole split held in memory.

Everything here takes the input size and crop by value, so data loading needs no model: the model card
(:mod:`depthxai.models.wrapper`) passes ``card.input_size`` and ``card.input_crop``. Training (models) and the
explainer (attribution) read their images through :func:`load_split_frames`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from depthxai.data.io import DatasetInfo, read_depth, read_index, read_rgb
from depthxai.errors import DataError

#: KITTI benchmark ("KB") crop size used by PixelFormer on KITTI.
KB_CROP = (352, 1216)


def frame_crop_box(input_crop: str | None, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``(top, left, height, width)`` region of a full frame that a network sees: the whole frame, or for
    ``input_crop == "kb"`` the KITTI benchmark crop (bottom rows, centred columns)."""
    h, w = image_size
    if input_crop == "kb":
        ch, cw = KB_CROP
        if h < ch or w < cw:
            raise ValueError(f"image {h}x{w} is smaller than the KB crop {ch}x{cw}")
        return h - ch, (w - cw) // 2, ch, cw
    return 0, 0, h, w


def prepare_rgb(rgb: np.ndarray, input_size: tuple[int, int], input_crop: str | None = None) -> Tensor:
    """An image in the network's input frame: ``uint8 (H, W, 3)`` -> float ``(3, h, w)`` RGB in [0, 1].

    Crops (:func:`frame_crop_box`) and resizes bilinearly (``align_corners=False``, no antialias) to
    ``input_size``, in the order the official code does (scale to [0, 1] first).
    """
    top, left, ch, cw = frame_crop_box(input_crop, rgb.shape[:2])
    # np.array copies: inputs may be read-only
    x = torch.from_numpy(np.array(rgb[top : top + ch, left : left + cw])).permute(2, 0, 1)[None]
    x = x.to(torch.float32) / 255.0
    if tuple(x.shape[-2:]) != tuple(input_size):
        x = F.interpolate(x, size=input_size, mode="bilinear", align_corners=False)
    return x[0]


def resize_depth_nearest(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize depth maps ``(..., H, W)`` by nearest neighbour (pixel centres, PyTorch's ``nearest-exact``), so that
    no invalid zero is averaged into a valid depth."""
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    lead = depth.shape[:-2]
    flat = depth.reshape(-1, 1, *depth.shape[-2:])
    return F.interpolate(flat, size=size, mode="nearest-exact").reshape(*lead, *size)


@dataclass
class SplitFrames:
    """A split held in memory at a network's input size.

    Attributes:
        rgb: ``(N, 3, h, w)`` float32 RGB in [0, 1] (crop and bilinear resize applied).
        depth: ``(N, 1, h, w)`` float32 metres, nearest-neighbour resized; 0 = invalid.
        ids: the image ids, in index order.
    """

    rgb: Tensor
    depth: Tensor
    ids: list[str]


def split_files(data_root: Path, split: str) -> list[tuple[str, Path, Path]]:
    """``(image id, RGB path, depth path)`` of each image of ``split``, in index order.

    Raises:
        DataError: for an empty split (naming the index file).
    """
    index = read_index(data_root, split)
    if len(index) == 0:
        raise DataError(f"{data_root / 'index.csv'}: no images in split {split!r}; prepare the dataset with a "
                        f"non-empty {split} split")
    return [(row.id, data_root / row.rgb, data_root / row.depth) for row in index.itertuples()]


def load_split_frames(data_root: str | Path, split: str, info: DatasetInfo, input_size: tuple[int, int],
                      input_crop: str | None = None) -> SplitFrames:
    """Read every image of ``split`` once and bring it to ``input_size`` (see :class:`SplitFrames`).

    Depth outside the dataset's valid range ``(min_depth, max_depth)`` is set to 0 (invalid); the crop applies to
    depth as to the image.

    Raises:
        DataError: for an empty split, or an image whose depth map has another size (naming the file).
    """
    data_root = Path(data_root)
    rgbs, depths, ids = [], [], []
    for image_id, rgb_path, depth_path in split_files(data_root, split):
        rgb = read_rgb(rgb_path)
        depth = read_depth(depth_path, info.depth_scale)
        if depth.shape != rgb.shape[:2]:
            raise DataError(f"{depth_path}: depth {depth.shape} and image {rgb.shape[:2]} sizes differ")
        rgbs.append(prepare_rgb(rgb, input_size, input_crop))
        top, left, ch, cw = frame_crop_box(input_crop, depth.shape)
        d = torch.from_numpy(depth[top : top + ch, left : left + cw].copy())
        d = torch.where((d > info.min_depth) & (d < info.max_depth), d, torch.zeros_like(d))
        depths.append(resize_depth_nearest(d, input_size)[None])
        ids.append(image_id)
    return SplitFrames(torch.stack(rgbs), torch.stack(depths), ids)
