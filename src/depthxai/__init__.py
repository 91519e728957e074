"""depthxai: explainability assessment for monocular depth estimation.

Subpackages: ``data`` (synthetic scenes, NYU/KITTI preparation, downloads), ``models`` (METER,
PixelFormer, registry of model cards), ``attribution`` (Saliency, Integrated Gradients, Attention
Rollout), ``evaluation`` (depth metrics, perturbation curves, Attribution Fidelity, Infidelity),
``stats`` (tests, reliability) and ``report`` (tables, figures, claims).
"""

__version__ = "0.1.0"
