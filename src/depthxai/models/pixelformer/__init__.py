"""PixelFormer (Agarwal & Arora, WACV 2023) with the official state-dict layout; see :mod:`.model`."""

from depthxai.models.pixelformer.model import (
    ENCODERS,
    PixelFormer,
    PixelFormerConfig,
    build_pixelformer,
    config_for_version,
)

__all__ = ["ENCODERS", "PixelFormer", "PixelFormerConfig", "build_pixelformer", "config_for_version"]
