"""The explainer's mask network: :class:`ExplainerNet` (an encoder-decoder from image and target weights to a
mask in [0, 1]), its convolution blocks, and :func:`width_of_state`, which reads a saved net's width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthxai.errors import CheckpointError

#: The input size of :class:`ExplainerNet` is padded to a multiple of this (four halvings).
SIZE_MULTIPLE = 16


class _ConvNormReLU(nn.Sequential):
    """3x3 convolution (optionally strided), GroupNorm (batch-independent: an image's mask never depends on its
    batch mates), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(math.gcd(4, cout), cout), nn.ReLU(inplace=True))


class _Up(nn.Module):
    """Decoder step: upsample x2 (bilinear), project to the skip's width (1x1), add the skip, one 3x3 block.

    Adding instead of concatenating keeps the decoder as cheap as the encoder.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(cin, cout, 1, bias=False)
        self.block = _ConvNormReLU(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.project(x) + skip)


class ExplainerNet(nn.Module):
    """Encoder-decoder mapping (image, target weights) to a mask in [0, 1] at the input resolution.

    Four down steps: a space-to-depth stem (2x2 pixel blocks to channels, width ``w``, 1/2 resolution), then three
    stride-2 blocks (widths ``2w, 6w, 16w`` at 1/4, 1/8, 1/16); four up steps: three decoder blocks with additive
    skips back to 1/2 resolution, a 1x1 convolution to logits and a bilinear x2 upsampling to the input
    resolution, then a sigmoid. The parameters sit in the coarse stages, where they cost little time; no
    convolution runs at full resolution (narrow full-resolution convolutions are slow on a CPU, and a mask needs
    no single-pixel detail). ``width=8``: 0.27 M parameters, 0.13 GMAC at 192x256 (METER-XXS: 0.71 M, 0.21 GMAC
    in its convolutions and linear layers alone), about a third of a METER-XXS forward pass on one CPU thread.

    The target map (normalised to max 1) enters with the image and again, average-pooled, at the input of every
    down block and of the head: the mask must depend on the target, and a short training learns that faster
    through these direct paths than from the first layer alone.

    Args:
        width: channels ``w`` of the 1/2-resolution stage (the others are multiples of it).
        initial_area: the output bias is set so that the first masks have this mean (the middle of the area
            range saves the first steps from pulling a 0.5 mask into range).
    """

    def __init__(self, width: int = 8, initial_area: float = 0.5) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if not 0 < initial_area < 1:
            raise ValueError(f"initial_area must be in (0, 1), got {initial_area}")
        self.width = width
        c0, c1, c2, c3 = width, 2 * width, 6 * width, 16 * width
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), _ConvNormReLU(16, c0), _ConvNormReLU(c0, c0))
        self.down = nn.ModuleList(
            nn.Sequential(_ConvNormReLU(cin + 1, cout, stride=2), _ConvNormReLU(cout, cout))
            for cin, cout in ((c0, c1), (c1, c2), (c2, c3))
        )
        self.up = nn.ModuleList(_Up(cin, cout) for cin, cout in ((c3, c2), (c2, c1), (c1, c0)))
        self.head = nn.Conv2d(c0 + 1, 1, 1)
        nn.init.zeros_(self.head.weight)
        assert self.head.bias is not None  # Conv2d's default bias=True
        nn.init.constant_(self.head.bias, math.log(initial_area / (1 - initial_area)))

    def forward(self, images: Tensor, weights: Tensor) -> Tensor:
        """The mask.

        Args:
            images: ``(B, 3, H, W)`` RGB in [0, 1].
            weights: ``(B, 1, H, W)`` target weights (non-negative; any scale, each image is normalised to max 1).

        Returns:
            ``(B, 1, H, W)`` mask in [0, 1]. Sizes not divisible by 16 are padded (replicate) and cropped back.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if weights.shape[0] != images.shape[0] or weights.shape[1] != 1 or weights.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"weights {tuple(weights.shape)} do not match images {tuple(images.shape)}")
        h, w = images.shape[-2:]
        peak = weights.amax(dim=(1, 2, 3), keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
        target = weights / peak
        x = torch.cat([images - 0.5, target], dim=1)
        pad_h, pad_w = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            target = x[:, 3:]
        targets = [F.avg_pool2d(target, 2)]
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(torch.cat([skips[-1], targets[-1]], dim=1)))
            targets.append(F.avg_pool2d(targets[-1], 2))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        logits = F.interpolate(self.head(torch.cat([y, targets[0]], dim=1)), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        return torch.sigmoid(logits)[:, :, :h, :w]


def width_of_state(state: Mapping[str, Tensor]) -> int:
    """The ``width`` of the :class:`ExplainerNet` a state dict belongs to (output channels of its first layer)."""
    key = "stem.1.0.weight"
    if key not in state:
        raise CheckpointError(f"not an ExplainerNet state dict: no {key!r}")
    return int(state[key].shape[0])
