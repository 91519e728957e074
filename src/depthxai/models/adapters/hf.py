"""Hugging Face transformers depth models behind :class:`~depthxai.models.DepthModel`: ``hf:<hub-id-or-dir>``.

Needs the ``hf`` extra (``pip install "depthxai[hf]"``, transformers 5.23). Any class of
``AutoModelForDepthEstimation`` loads: Depth Anything (v1/v2, relative or metric; Yang et al., CVPR 2024), DPT
(Ranftl et al., ICCV 2021), GLPN (Kim et al., 2022), ZoeDepth (Bhat et al., 2023), Depth Pro (Bochkovskii et al.,
2024). The network's ``predicted_depth`` ``(B, H, W)`` becomes the ``(B, 1, h, w)`` raw output.

The card (:func:`hf_card`) comes from the model's files:

* ``input_size``, ``mean``/``std`` from ``preprocessor_config.json``: its ``size`` (height, width), rounded to its
  ``ensure_multiple_of``; its rescale factor and normalisation folded into ``mean``/``std`` for RGB in [0, 1]. The
  processor's aspect-preserving resize (``keep_aspect_ratio``) and bicubic resampling are not reproduced: inputs are
  resized to the fixed ``input_size`` bilinearly (:func:`depthxai.models.wrapper.prepare_input`); pass
  ``input_size=(H, W)`` (multiples of the patch size) to keep an aspect ratio.
* ``output_kind``: Depth Anything's ``depth_estimation_type``; GLPN and ZoeDepth ``metric`` (range from their
  config); DPT and Depth Pro ``relative`` (Depth Pro's ``predicted_depth`` is canonical inverse depth: metric depth
  needs the focal length, which this adapter does not use). Any other model type needs ``output_kind=...``.

A source that starts with ``/``, ``.`` or ``~``, or names an existing directory, is a local directory and is read
offline (``local_files_only``); anything else is a hub id, downloaded as transformers does. Attention runs in the
model's own implementation (SDPA where it has one); :meth:`HFDepthNet.attentions` switches to eager attention for
the one pass that reads the attention weights (attention rollout), then restores it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from depthxai.errors import ConfigError, DataError
from depthxai.models.adapters.base import TokenLayout, make_card
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel

PREFIX = "hf:"

#: Output kind of the model types whose config does not say it.
OUTPUT_KIND_BY_TYPE = {"dpt": "relative", "depth_pro": "relative", "glpn": "metric", "zoedepth": "metric"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError('hf: models need transformers: pip install "depthxai[hf]"') from None
    return transformers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_local_source(source: str) -> bool:
    """Whether ``source`` names a local directory (see the module docstring) rather than a hub id."""
    return source.startswith(("/", ".", "~")) or Path(source).expanduser().is_dir()


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Run every (sub)model of a transformers ``model`` with eager attention inside the block, then restore.

    SDPA and flash attention do not return attention weights; each submodel (e.g. Depth Anything's DINOv2
    backbone) has its own config whose ``_attn_implementation`` is read at call time.
    """
    configs: dict[int, Any] = {id(m.config): m.config for m in model.modules()
                               if hasattr(getattr(m, "config", None), "_attn_implementation")}
    saved = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = "eager"
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = saved[key]


class HFDepthNet(nn.Module):
    """A transformers depth model as a bare network: normalised pixels ``(B, 3, H, W)`` -> ``(B, 1, h, w)``.

    Args:
        model: a ``*ForDepthEstimation`` model.
        name: the depthxai model name (``hf:<source>``), for error messages.
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.name = name

    def forward(self, pixel_values: Tensor) -> Tensor:
        depth: Tensor = self.model(pixel_values=pixel_values).predicted_depth
        return depth[:, None] if depth.dim() == 3 else depth

    def token_layout(self, height: int, width: int) -> TokenLayout:
        """The ViT token layout for a ``height x width`` input: patch size from the patch embedding, one prefix
        token if the embeddings hold a CLS token, plus their register tokens (DINOv2 with registers)."""
        patch: tuple[int, int] | None = None
        prefix: int | None = None
        for module in self.model.modules():  # the first (outermost) encoder's embeddings, in registration order
            if patch is None and type(module).__name__.endswith("PatchEmbeddings") and hasattr(module, "patch_size"):
                size: Any = module.patch_size
                patch = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
            if prefix is None and isinstance(getattr(module, "cls_token", None), nn.Parameter):
                registers = getattr(module, "register_tokens", None)
                prefix = 1 + (int(registers.shape[1]) if isinstance(registers, nn.Parameter) else 0)
            if patch is not None and prefix is not None:
                break
        if patch is None:
            raise ConfigError(f"model {self.name!r}: attention rollout cannot read its attention (no ViT patch "
                              "embedding found)")
        return TokenLayout(prefix=prefix or 0, grid=(height // patch[0], width // patch[1]), patch=patch)

    def attentions(self, pixel_values: Tensor) -> tuple[list[Tensor], TokenLayout]:
        """The encoder's attention weights for normalised ``pixel_values``, from the input side to the output side.

        Returns:
            ``[(B, heads, N, N), ...]`` one per layer (rows: queries, summing to 1) and the token layout.

        Raises:
            ConfigError: naming the model, when it returns no attention, a non-square one (e.g. GLPN's reduced keys)
                or one whose size does not match a ViT layout of the input (e.g. Depth Pro's tiled encoders).
        """
        with eager_attention(self.model):
            out = self.model(pixel_values=pixel_values, output_attentions=True)
        attentions = [a for a in (getattr(out, "attentions", None) or ()) if a is not None]
        refuse = f"model {self.name!r} ({getattr(self.model.config, 'model_type', '?')}): attention rollout cannot read"
        if not attentions:
            raise ConfigError(f"{refuse} its attention (the model returns none)")
        for attention in attentions:
            if attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
                raise ConfigError(f"{refuse} attention of shape {tuple(attention.shape)}: not square self-attention "
                                  "over one token set")
        layout = self.token_layout(*pixel_values.shape[-2:])
        for attention in attentions:
            if attention.shape[-1] != layout.n_tokens:
                raise ConfigError(f"{refuse} attention over {attention.shape[-1]} tokens: a ViT with {layout.prefix} "
                                  f"prefix token(s) and a {layout.grid[0]}x{layout.grid[1]} patch grid has "
                                  f"{layout.n_tokens}")
        return attentions, layout


def processor_fields(proc: Mapping[str, Any] | None) -> dict[str, Any]:
    """Card fields (``input_size``, ``mean``, ``std``) from an image-processor dict; empty without one.

    The network sees ``(x * g - m) / s`` for RGB ``x`` in [0, 1], with ``g = 255 * rescale_factor`` (1 when the
    processor rescales 0..255 to 0..1), ``m``, ``s`` its ``image_mean``/``image_std`` (0, 1 without
    normalisation): the card holds ``mean = m / g``, ``std = s / g`` (none at all when ``g = 1`` and nothing is
    normalised).
    """
    if not proc:
        return {}
    fields: dict[str, Any] = {}
    size = proc.get("size")
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if isinstance(size, Mapping) and "height" in size and "width" in size:
        multiple = proc.get("ensure_multiple_of") or proc.get("size_divisor") or 1
        step = int(multiple) if float(multiple) >= 1 and float(multiple) == int(multiple) else 1
        fields["input_size"] = tuple(max(step, int(round(int(size[k]) / step)) * step) for k in ("height", "width"))
    gain = 255.0 * float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 255.0
    if proc.get("do_normalize", False) and proc.get("image_mean") is not None and proc.get("image_std") is not None:
        mean, std = proc["image_mean"], proc["image_std"]
        mean = [float(mean)] * 3 if isinstance(mean, (int, float)) else [float(v) for v in mean]
        std = [float(std)] * 3 if isinstance(std, (int, float)) else [float(v) for v in std]
        fields["mean"] = tuple(v / gain for v in mean)
        fields["std"] = tuple(v / gain for v in std)
    elif not math.isclose(gain, 1.0):
        fields["mean"], fields["std"] = (0.0, 0.0, 0.0), (1 / gain,) * 3
    return fields


def model_fields(config: Any) -> dict[str, Any]:
    """Card fields (``output_kind``, ``min_depth``, ``max_depth``) from a transformers depth-model config."""
    model_type = getattr(config, "model_type", "")
    kind = getattr(config, "depth_estimation_type", None) or OUTPUT_KIND_BY_TYPE.get(model_type)
    fields: dict[str, Any] = {"output_kind": kind}
    if kind != "metric":
        return fields
    bins = getattr(config, "bin_configurations", None)
    if bins:  # ZoeDepth: one range per bin head (indoor / outdoor)
        fields["min_depth"] = min(float(b["min_depth"]) for b in bins)
        fields["max_depth"] = max(float(b["max_depth"]) for b in bins)
    elif getattr(config, "max_depth", None):
        fields["max_depth"] = float(config.max_depth)
    return fields


def _processor_dict(source: str, local: bool, name: str) -> dict[str, Any] | None:
    transformers = _transformers()
    try:
        proc, _ = transformers.ImageProcessingMixin.get_image_processor_dict(source, local_files_only=local)
    except OSError:
        return None  # no preprocessor_config.json: the card needs input_size (and mean/std) by keyword
    except ValueError as exc:
        raise DataError(f"model {name!r}: unreadable image-processor config ({_first_line(exc)})") from None
    return dict(proc)


def hf_card(name: str, model: nn.Module, proc: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> ModelCard:
    """The card of a loaded transformers depth model: processor fields, then model fields, then ``overrides``."""
    config: Any = model.config
    fields = {**processor_fields(proc), **model_fields(config),
              **{k: v for k, v in overrides.items() if v is not None}}
    if fields.get("output_kind") is None:
        raise ConfigError(f"model {name!r}: output kind of model type {config.model_type!r} unknown; pass "
                          "output_kind='metric' or 'relative'")
    return make_card(name, arch="hf", variant=str(config.model_type),
                     builder="depthxai.models.adapters.hf:build_hf_net",
                     builder_kwargs={"source": name[len(PREFIX):]}, fields=fields)


def build_hf_net(source: str, name: str | None = None) -> HFDepthNet:
    """The bare network of ``hf:<source>`` (eval mode), without its card.

    Raises:
        ConfigError: transformers missing.
        DataError: a local directory that does not exist, or a model that cannot be loaded (one line).
    """
    transformers = _transformers()
    name = name or PREFIX + source
    local = is_local_source(source)
    path = str(Path(source).expanduser()) if local else source
    if local and not Path(path).is_dir():
        raise DataError(f"model {name!r}: no such directory {path}")
    try:
        model = transformers.AutoModelForDepthEstimation.from_pretrained(path, local_files_only=local)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"model {name!r}: cannot load a transformers depth model ({_first_line(exc)})") from None
    return HFDepthNet(model.eval(), name)


def load_hf_model(source: str, device: str | torch.device = "cpu", **overrides: Any) -> DepthModel:
    """``hf:<source>`` as a :class:`DepthModel` in eval mode on ``device``.

    Args:
        source: a hub id (``depth-anything/Depth-Anything-V2-Small-hf``) or a local directory holding
            ``config.json``, the weights and (optionally) ``preprocessor_config.json``.
        device: torch device.
        overrides: card fields (:data:`~depthxai.models.adapters.base.CARD_FIELDS`) that replace those read from
            the files, e.g. ``input_size=(518, 686)``.
    """
    name = PREFIX + source
    net = build_hf_net(source, name)
    local = is_local_source(source)
    proc = _processor_dict(str(Path(source).expanduser()) if local else source, local, name)
    card = hf_card(name, net.model, proc, overrides)
    return DepthModel(net, card).to(device).eval()
