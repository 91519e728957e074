"""Tiny random transformers depth models, built offline from small configs and saved like hub checkpoints.

``save_tiny_model("depth_anything", folder)`` writes ``config.json``, the weights and ``preprocessor_config.json``
(the fields of the real processors, with a tiny size), so that ``hf:<folder>`` loads as a hub model would. The
workflow tests reuse :func:`save_tiny_depth_anything`. Needs transformers (the ``hf`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: ImageNet statistics, as Depth Anything's processor has them.
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}

#: Input side of the tiny models: a multiple of the patch size (14 for DINOv2, 16 for ViT and BEiT), of 8 for GLPN.
SIZES = {"depth_anything": 56, "dpt": 48, "glpn": 32, "zoedepth": 32}


def _vit(model_type: str, size: int, patch: int, layers: int, **extra: Any) -> dict[str, Any]:
    return dict(model_type=model_type, image_size=size, patch_size=patch, hidden_size=16, num_hidden_layers=layers,
                num_attention_heads=2, intermediate_size=32, initializer_range=0.2, **extra)


def tiny_model(kind: str, seed: int = 0, relative: bool = True) -> nn.Module:
    """A tiny random ``*ForDepthEstimation`` model of ``kind`` (a key of :data:`SIZES`), eval mode.

    Weights are drawn with a large ``initializer_range`` and the query/key projections are scaled up, so that the
    depth varies over the image and the attention is far from uniform (a plain random init gives nearly constant
    depth and uniform attention: weak tests).
    """
    import transformers as tf

    torch.manual_seed(seed)
    if kind == "depth_anything":
        config = tf.DepthAnythingConfig(
            backbone_config=_vit("dinov2", 56, 14, 2, out_indices=[1, 2], reshape_hidden_states=False),
            patch_size=14, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16], reassemble_factors=[2, 1],
            fusion_hidden_size=8, head_hidden_size=8, initializer_range=0.2,
            depth_estimation_type="relative" if relative else "metric", max_depth=20)
        model: nn.Module = tf.DepthAnythingForDepthEstimation(config)
    elif kind == "dpt":
        config = tf.DPTConfig(**{k: v for k, v in _vit("dpt", 48, 16, 2).items() if k != "model_type"},
                              backbone_out_indices=[0, 1], neck_hidden_sizes=[8, 16], reassemble_factors=[2, 1],
                              fusion_hidden_size=8, head_in_index=-1)
        model = tf.DPTForDepthEstimation(config)
    elif kind == "glpn":
        config = tf.GLPNConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                               patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                               decoder_hidden_size=8, max_depth=10, initializer_range=0.2)
        model = tf.GLPNForDepthEstimation(config)
    elif kind == "zoedepth":  # the metric head hard-codes four neck stages
        backbone = _vit("beit", 32, 16, 4, use_relative_position_bias=True, reshape_hidden_states=False,
                        out_features=["stage1", "stage2", "stage3", "stage4"])
        config = tf.ZoeDepthConfig(
            backbone_config=backbone, neck_hidden_sizes=[4, 8, 8, 16], reassemble_factors=[4, 2, 1, 0.5],
            fusion_hidden_size=8, bottleneck_features=8, num_relative_features=8, num_attractors=[4, 2, 2, 1],
            bin_embedding_dim=8, bin_configurations=[{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0}],
            num_patch_transformer_layers=1, patch_transformer_hidden_size=8, patch_transformer_intermediate_size=16,
            patch_transformer_num_attention_heads=1, initializer_range=0.2)
        model = tf.ZoeDepthForDepthEstimation(config)
    else:
        raise ValueError(f"no tiny model {kind!r}; known: {sorted(SIZES)}")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("query.weight", "key.weight")):
                param.mul_(3.0)
    return model.eval()


def processor_config(kind: str) -> dict[str, Any]:
    """The ``preprocessor_config.json`` of ``kind``'s real processor, at the tiny size."""
    size = SIZES[kind]
    common = {"do_rescale": True, "rescale_factor": 1 / 255, "do_resize": True}
    if kind == "depth_anything":  # as LiheYoung/depth-anything-small-hf, 518 -> 56
        return {**common, **IMAGENET, "image_processor_type": "DPTImageProcessor", "do_normalize": True,
                "do_pad": False, "ensure_multiple_of": 14, "keep_aspect_ratio": True, "resample": 3,
                "size": {"height": size, "width": size}}
    if kind == "dpt":  # as Intel/dpt-large
        return {**common, "image_processor_type": "DPTImageProcessor", "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "ensure_multiple_of": 1,
                "keep_aspect_ratio": False, "resample": 3, "size": {"height": size, "width": size}}
    if kind == "glpn":  # as vinvino02/glpn-nyu: no fixed size, no normalisation
        return {**common, "image_processor_type": "GLPNImageProcessor", "size_divisor": 32, "resample": 2}
    return {**common, "image_processor_type": "ZoeDepthImageProcessor", "do_normalize": True,  # Intel/zoedepth-nyu
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "ensure_multiple_of": 32,
            "keep_aspect_ratio": True, "do_pad": True, "resample": 2, "size": {"height": size, "width": size}}


def save_tiny_model(kind: str, folder: str | Path, seed: int = 0, relative: bool = True) -> Path:
    """Build :func:`tiny_model` and save it with its processor config to ``folder``; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_model(kind, seed=seed, relative=relative).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor_config(kind), indent=2))
    return folder


def save_tiny_depth_anything(folder: str | Path, seed: int = 0, relative: bool = True) -> Path:
    """A tiny random Depth Anything (DINOv2 backbone, 2 layers, 56x56 input) saved to ``folder`` for ``hf:<folder>``."""
    return save_tiny_model("depth_anything", folder, seed=seed, relative=relative)
