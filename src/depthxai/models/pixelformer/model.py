"""PixelFormer (Agarwal & Arora, "Attention Attention Everywhere: Monocular Depth Prediction with Skip
Attention", WACV 2023), re-implemented with the state-dict layout of the official code
(``ashutosh1807/PixelFormer`` @ ``bb0ae9f``, ``pixelformer/networks/PixelFormer.py``).

Data flow for an input ``(B, 3, H, W)`` with ``H, W`` multiples of 32:

1. Swin encoder -> four maps ``e1..e4`` at 1/4, 1/8, 1/16, 1/32;
2. PSP decoder on ``e4`` -> pixel queries ``q4`` at 1/32 (``decoder_channels``);
3. ``sam4(e4, q4)`` -> PixelShuffle(2) -> ``sam3(e3, .)`` -> PixelShuffle(2) -> ``sam2(e2, .)`` ->
   PixelShuffle(2) -> ``sam1(e1, .)`` -> ``q0`` at 1/4 (``sam_dims[0]`` channels);
4. BCP on ``q4`` -> ``n_bins`` bin centres; DispHead on ``q0`` -> depth at 1/4, upsampled x4 bilinearly.

The output is depth in metres ``(B, 1, H, W)`` inside ``(min_depth, max_depth)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor, nn

from depthxai.models.pixelformer.heads import BinCenterPredictor, DispHead, PSPDecoder
from depthxai.models.pixelformer.sam import SkipAttentionModule
from depthxai.models.pixelformer.swin import SwinBackbone

#: Total stride of the encoder; the SAM chain needs every encoder map to be exactly twice the next one.
INPUT_MULTIPLE = 32


@dataclass(frozen=True)
class PixelFormerConfig:
    """Architecture hyper-parameters. The defaults of the decoder fields are the values upstream hard-codes.

    Attributes:
        embed_dim, depths, num_heads, window_size, drop_path_rate: the Swin encoder.
        decoder_channels: PSP decoder output width, also the BCP input (512).
        sam_dims: working widths of sam1..sam4 (128, 256, 512, 1024). sam_{i+1}'s output is pixel-shuffled
            into sam_i's queries, so ``sam_dims[i+1]`` must be divisible by 4.
        sam_heads: attention heads of sam1..sam4 (4, 8, 16, 32).
        sam_window: SAM attention window (7, independent of the encoder window).
        pool_scales: PPM pooling scales (1, 2, 3, 6).
        ppm_groups: GroupNorm groups in the PPM branches (256).
        bcp_hidden: BCP MLP width (2048).
        n_bins: number of depth bins (256).
    """

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7
    drop_path_rate: float = 0.3
    decoder_channels: int = 512
    sam_dims: tuple[int, int, int, int] = (128, 256, 512, 1024)
    sam_heads: tuple[int, int, int, int] = (4, 8, 16, 32)
    sam_window: int = 7
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    ppm_groups: int = 256
    bcp_hidden: int = 2048
    n_bins: int = 256

    @property
    def encoder_channels(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]

    @property
    def query_dims(self) -> list[int]:
        """Channels of the queries entering sam1..sam4: shuffled outputs of the next SAM, and the decoder's."""
        return [self.sam_dims[1] // 4, self.sam_dims[2] // 4, self.sam_dims[3] // 4, self.decoder_channels]


#: Encoders by name; the version string appends the window size, e.g. ``large07``.
ENCODERS: dict[str, PixelFormerConfig] = {
    "tiny": PixelFormerConfig(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "base": PixelFormerConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "large": PixelFormerConfig(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    # Ours, for the embedded synthetic default (CPU-trainable): a 32-wide 2-2-2-2 encoder, decoder widths
    # (PSP, SAM, BCP) 1/8 of upstream's, 64 bins, milder stochastic depth for short training runs.
    "nano": PixelFormerConfig(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), drop_path_rate=0.1,
                              decoder_channels=64, sam_dims=(16, 32, 64, 128), sam_heads=(1, 1, 2, 4),
                              ppm_groups=32, bcp_hidden=256, n_bins=64),
}


def config_for_version(version: str) -> PixelFormerConfig:
    """The configuration of ``version`` = encoder name + two-digit window size (``large07``, ``nano07``).

    Raises:
        ValueError: for an unknown encoder or a malformed version string.
    """
    name, window = version[:-2], version[-2:]
    if name not in ENCODERS or not window.isdigit() or int(window) < 1:
        raise ValueError(f"unknown PixelFormer version {version!r}; expected one of "
                         f"{', '.join(n + '07' for n in ENCODERS)} (encoder name + two-digit window size)")
    return replace(ENCODERS[name], window_size=int(window))


class PixelFormer(nn.Module):
    """The whole network. ``forward(imgs (B, 3, H, W), ImageNet-normalised) -> depth (B, 1, H, W)`` in metres.

    Args:
        config: architecture (see :class:`PixelFormerConfig`).
        min_depth, max_depth: depth range of the bins in metres (plain floats of ``bcp``, not buffers).
        inv_depth: stored as upstream does; the official forward never reads it.
    """

    def __init__(self, config: PixelFormerConfig, min_depth: float = 0.1, max_depth: float = 10.0,
                 inv_depth: bool = False) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        self.inv_depth = inv_depth
        enc = config.encoder_channels
        self.backbone = SwinBackbone(config.embed_dim, config.depths, config.num_heads, config.window_size,
                                     drop_path_rate=config.drop_path_rate)
        # Registered coarse to fine (sam4 first), as upstream, which fixes the state-dict order.
        for level in (3, 2, 1, 0):
            self.add_module(f"sam{level + 1}", SkipAttentionModule(
                input_dim=enc[level], embed_dim=config.sam_dims[level], query_dim=config.query_dims[level],
                window_size=config.sam_window, num_heads=config.sam_heads[level]))
        self.decoder = PSPDecoder(enc, config.decoder_channels, config.pool_scales, config.ppm_groups)
        self.disp_head1 = DispHead(config.sam_dims[0], config.n_bins)
        self.bcp = BinCenterPredictor(max_depth, min_depth, config.decoder_channels, config.bcp_hidden, config.n_bins)
        self.pixel_shuffle = nn.PixelShuffle(2)

    @property
    def min_depth(self) -> float:
        """Lower end of the bins in metres (held by the BCP, the only module that uses it)."""
        return self.bcp.min_depth

    @property
    def max_depth(self) -> float:
        """Upper end of the bins in metres (held by the BCP)."""
        return self.bcp.max_depth

    @property
    def sams(self) -> list[SkipAttentionModule]:
        """sam1..sam4 (fine to coarse)."""
        return [getattr(self, f"sam{i}") for i in range(1, 5)]

    def forward(self, imgs: Tensor) -> Tensor:
        height, width = imgs.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(f"PixelFormer input must have height and width divisible by {INPUT_MULTIPLE}, "
                             f"got {height}x{width}; resize or crop the image (e.g. 480x640, 352x1216)")
        features = self.backbone(imgs)
        q4 = self.decoder(features)
        queries = q4
        for level in (3, 2, 1, 0):
            queries = self.sams[level](features[level], queries)
            if level > 0:
                queries = self.pixel_shuffle(queries)
        bin_centers = self.bcp(q4)
        return self.disp_head1(queries, bin_centers, 4)


def _check_config(config: PixelFormerConfig) -> None:
    if len(config.depths) != 4 or len(config.num_heads) != 4:
        raise ValueError("PixelFormer needs a four-stage encoder (depths and num_heads of length 4)")
    if any(d % 4 for d in config.sam_dims[1:]):
        raise ValueError(f"sam_dims[1:] must be divisible by 4 for the pixel shuffle, got {config.sam_dims}")


def build_pixelformer(version: str = "large07", max_depth: float = 10.0, min_depth: float = 0.1,
                      inv_depth: bool = False) -> PixelFormer:
    """Build PixelFormer with the official state-dict layout and random (upstream-style) initialisation.

    Args:
        version: ``tiny07``, ``base07``, ``large07`` (official encoders; any two-digit window) or ``nano07``.
        max_depth, min_depth: depth range in metres (NYU 10, KITTI 80; ``min_depth`` 0.1 as upstream).
        inv_depth: kept for signature parity; unused by the forward, as upstream.

    Returns:
        The network (train mode, nothing downloaded). Parameter counts: large07 270,895,920; base07
        140,432,340; tiny07 88,906,326.
    """
    return PixelFormer(config_for_version(version), min_depth=min_depth, max_depth=max_depth, inv_depth=inv_depth)
