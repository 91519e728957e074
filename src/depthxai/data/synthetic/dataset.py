"""Synthetic datasets: render ``n_train`` + ``n_test`` scenes into the prepared-dataset layout.

Image ``i`` of split ``s`` is rendered from ``default_rng(scene_seed(base, s, i))``, so every image can be
re-rendered alone and adding images never changes the earlier ones.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.data.synthetic.scene import get_setup, scaled_intrinsics
from depthxai.data.synthetic.shading import render_scene

#: Version of the scene generator, stored in ``dataset.json`` (bump when the images change).
GENERATOR_VERSION = 1
#: zlib level of the written PNGs: the fastest (encoding was a fifth of the rendering job at PIL's default 6).
PNG_COMPRESS_LEVEL = 1


def scene_seed(base_seed: int, split: str, index: int) -> int:
    """The seed of image ``index`` of ``split``: a function of (base seed, split name, index) only."""
    split_key = zlib.crc32(split.encode("utf-8"))
    state = np.random.SeedSequence([int(base_seed), split_key, int(index)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def image_id(split: str, index: int) -> str:
    """``train_000123``-style ids (zero-padded so that they sort in index order)."""
    return f"{split}_{index:06d}"


def generate_dataset(root: str | Path, name: str, setup: str, n_train: int, n_test: int, seed: int,
                     size: tuple[int, int] | None = None, progress: bool = True) -> DatasetInfo:
    """Render ``n_train`` + ``n_test`` scenes and write the prepared-dataset layout of :mod:`depthxai.data.io`.

    Writes ``<root>/rgb/<id>.png``, ``<root>/depth/<id>.png`` (z-depth * ``depth_scale``, 0 = invalid),
    ``index.csv`` and, last, ``dataset.json`` (so a crash never leaves a dataset that looks complete).

    Returns:
        The :class:`DatasetInfo` written.
    """
    spec = get_setup(setup)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    size = spec.default_size if size is None else (int(size[0]), int(size[1]))
    root = Path(root)
    rows = []
    jobs = [("train", i) for i in range(n_train)] + [("test", i) for i in range(n_test)]
    for split, i in tqdm(jobs, desc=f"render {name}", unit="img", disable=not progress):
        rgb, depth = render_scene(setup, scene_seed(seed, split, i), size)
        iid = image_id(split, i)
        rel_rgb, rel_depth = f"rgb/{iid}.png", f"depth/{iid}.png"
        write_rgb(root / rel_rgb, rgb, PNG_COMPRESS_LEVEL)
        write_depth(root / rel_depth, depth, spec.depth_scale, PNG_COMPRESS_LEVEL)
        rows.append({"id": iid, "split": split, "rgb": rel_rgb, "depth": rel_depth})
    write_index(root, pd.DataFrame(rows, columns=["id", "split", "rgb", "depth"]))
    fx, fy, cx, cy = scaled_intrinsics(setup, size)
    info = DatasetInfo(
        name=name, kind="synthetic", depth_scale=spec.depth_scale, min_depth=1e-3, max_depth=spec.max_depth,
        eval_crop="none", image_size=size, camera={"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        extra={"setup": setup, "seed": int(seed), "n_train": int(n_train), "n_test": int(n_test),
               "generator": "depthxai.data.synthetic", "generator_version": GENERATOR_VERSION},
    )
    write_dataset_info(root, info)
    return info
