"""PixelFormer heads: the PSP decoder on the coarsest encoder map, the Bin Center Predictor and the DispHead.

Facts follow ``pixelformer/networks/{PQI,PixelFormer}.py`` @ ``bb0ae9f`` (Agarwal & Arora, WACV 2023):

* the decoder ("PQI", pixel query initialiser) is an mmseg PSP head: a Pyramid Pooling Module (adaptive
  average pooling to 1, 2, 3, 6 cells, 1x1 conv + GroupNorm + ReLU, bilinear resize back) concatenated with
  its input and fused by a 3x3 conv + BatchNorm + ReLU ``bottleneck``. Upstream switches the PPM norm to
  GroupNorm(256 groups) inside its loop at scale 1, so all four branches use GroupNorm;
* the Bin Center Predictor (BCP) turns the spatial mean of the decoder output into ``n_bins`` adaptive depth
  bin centres in ``[min_depth, max_depth]`` (AdaBins-style widths, cumulative sum, midpoints);
* the DispHead predicts per-pixel bin probabilities and returns the probability-weighted centre, upsampled
  bilinearly from 1/4 to full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvNormAct(nn.Module):
    """``conv`` (no bias) -> norm -> ReLU, with the child names of ``mmcv.cnn.ConvModule``.

    Args:
        in_channels, out_channels, kernel_size, padding: of the convolution.
        norm: ``"bn"`` (``BatchNorm2d``, eps 1e-5) or ``"gn"`` (``GroupNorm``); the norm is registered under
            that name, as mmcv does.
        num_groups: groups of the GroupNorm (ignored for ``bn``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, norm: str = "bn",
                 num_groups: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        if norm == "bn":
            self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)
        elif norm == "gn":
            if out_channels % num_groups:
                raise ValueError(f"GroupNorm: {out_channels} channels are not divisible by {num_groups} groups")
            self.gn = nn.GroupNorm(num_groups, out_channels, eps=1e-5)
        else:
            raise ValueError(f"norm must be 'bn' or 'gn', got {norm!r}")
        self.norm_name = norm
        self.activate = nn.ReLU()
        # mmcv's default initialisation: Kaiming (fan_out, ReLU) convolution, unit norm.
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        norm_layer = getattr(self, norm)
        nn.init.ones_(norm_layer.weight)
        nn.init.zeros_(norm_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(getattr(self, self.norm_name)(self.conv(x)))


class PyramidPooling(nn.ModuleList):
    """Pooling Pyramid Module (PSPNet): one ``Sequential(AdaptiveAvgPool2d(s), ConvNormAct 1x1 GN)`` per scale.

    ``forward(x (B, C_in, H, W))`` returns a list of ``(B, channels, H, W)`` maps, each resized back to
    ``H x W`` bilinearly (``align_corners=False``).
    """

    def __init__(self, pool_scales: Sequence[int], in_channels: int, channels: int, num_groups: int) -> None:
        super().__init__(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvNormAct(in_channels, channels, 1, norm="gn",
                                                                   num_groups=num_groups))
            for scale in pool_scales
        )
        self.pool_scales = tuple(pool_scales)

    def forward(self, x: Tensor) -> list[Tensor]:
        size = x.shape[-2:]
        return [F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False) for branch in self]


class PSPDecoder(nn.Module):
    """PSP head on the last encoder map: ``bottleneck(cat[x, PPM(x)])``.

    Args:
        in_channels: channels of the four encoder maps (only the last is used).
        channels: output channels (512 upstream).
        pool_scales: PPM scales ((1, 2, 3, 6) upstream).
        num_groups: GroupNorm groups of the PPM branches (256 upstream).

    ``forward(features)`` takes the encoder tuple and returns ``(B, channels, H/32, W/32)``.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 512, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 num_groups: int = 256) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.channels = channels
        self.psp_modules = PyramidPooling(pool_scales, self.in_channels[-1], channels, num_groups)
        self.bottleneck = ConvNormAct(self.in_channels[-1] + len(pool_scales) * channels, channels, 3, padding=1,
                                      norm="bn")

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[-1]
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))


class BinCenterPredictor(nn.Module):
    """Bin Center Predictor ("BCP"): adaptive depth-bin centres from the global decoder feature.

    ``widths = (max_depth - min_depth) * softmax(fc2(GELU(fc1(mean_hw(x)))))``; edges are
    ``min_depth + cumsum(widths)`` (with ``min_depth`` as the first edge) and centres the edge midpoints.

    Args:
        max_depth, min_depth: the depth range in metres.
        in_features: channels of the decoder output (512 upstream).
        hidden_features: MLP width (2048 upstream).
        n_bins: number of bins (256 upstream).

    ``forward(x (B, C, h, w)) -> (B, n_bins, 1, 1)`` centres in metres, increasing along dim 1.
    """

    def __init__(self, max_depth: float, min_depth: float, in_features: int = 512, hidden_features: int = 2048,
                 n_bins: int = 256, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, n_bins)
        self.drop = nn.Dropout(drop)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.flatten(2).mean(dim=2)
        logits = self.drop(self.fc2(self.drop(self.act(self.fc1(pooled)))))
        probs = torch.softmax(logits, dim=1)
        probs = probs / probs.sum(dim=1, keepdim=True)
        widths = F.pad((self.max_depth - self.min_depth) * probs, (1, 0), mode="constant", value=self.min_depth)
        edges = torch.cumsum(widths, dim=1)
        centers = 0.5 * (edges[:, :-1] + edges[:, 1:])
        return centers.reshape(centers.shape[0], centers.shape[1], 1, 1)

    def extra_repr(self) -> str:
        return f"min_depth={self.min_depth}, max_depth={self.max_depth}"


class DispHead(nn.Module):
    """Depth from bin probabilities: ``sum_k softmax_k(conv1(x)) * centers_k``, then bilinear upsampling.

    Args:
        input_dim: channels of the 1/4-resolution decoder map.
        n_bins: number of bins (256 upstream), must equal the BCP's.

    ``forward(x (B, input_dim, h, w), centers (B, n_bins, 1, 1), scale)`` returns ``(B, 1, h*scale, w*scale)``.
    """

    def __init__(self, input_dim: int = 128, n_bins: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, n_bins, 3, padding=1)

    def forward(self, x: Tensor, centers: Tensor, scale: int) -> Tensor:
        probs = self.conv1(x).softmax(dim=1)
        depth = torch.sum(probs * centers, dim=1, keepdim=True)
        if scale > 1:
            depth = F.interpolate(depth, scale_factor=scale, mode="bilinear", align_corners=False)
        return depth
