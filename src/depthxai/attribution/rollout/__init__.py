"""Attention Rollout (Abnar & Zuidema, ACL 2020): shared steps (:mod:`.common`) and one module per architecture
(:mod:`.meter`, :mod:`.swin` for PixelFormer, :mod:`.vit`), picked from the model card by :class:`AttentionRollout`."""

from depthxai.attribution.rollout.common import (
    HEAD_FUSIONS,
    ROLLOUT_BY_ARCH,
    AttentionRollout,
    discard_lowest,
    fuse_heads,
    pool_relevance,
    rollout_matrix,
    upsample_relevance,
    with_residual,
)

__all__ = [
    "HEAD_FUSIONS",
    "ROLLOUT_BY_ARCH",
    "AttentionRollout",
    "discard_lowest",
    "fuse_heads",
    "pool_relevance",
    "rollout_matrix",
    "upsample_relevance",
    "with_residual",
]
