"""Depth models: METER and PixelFormer re-implemented with the official state-dict layout.

``build_model(name)`` returns the bare ``nn.Module``; :func:`load_depth_model` wraps it with its model card
so that it maps RGB in [0, 1] to depth in metres.
"""

from depthxai.models.checkpoint import load_weights, read_state_dict, save_state_dict
from depthxai.models.registry import ModelCard, build_model, get_card, list_models
from depthxai.models.wrapper import DepthModel, load_depth_model, predict_image, prepare_input

__all__ = [
    "DepthModel",
    "ModelCard",
    "build_model",
    "get_card",
    "list_models",
    "load_depth_model",
    "load_weights",
    "predict_image",
    "prepare_input",
    "read_state_dict",
    "save_state_dict",
]
