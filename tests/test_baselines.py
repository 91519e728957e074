"""The model-independent baselines and the smoothness measure that matches them, on known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from depthxai.attribution import build_method
from depthxai.attribution.baselines import (
    RandomSmooth,
    blur_sigma_for,
    correlation_length,
    read_correlation_length,
    smoothness_summary,
)
from depthxai.errors import ConfigError, DataError
from depthxai.imageops import gaussian_blur


def test_correlation_length_known_answers() -> None:
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(128, 128, generator=gen, dtype=torch.float64)
    assert correlation_length(white, "signed") == pytest.approx(0.5, abs=0.03)  # rho(1) = 0: half-way to lag 1
    for sigma in (2.0, 4.0):
        field = gaussian_blur(torch.randn(1, 1, 256, 256, generator=gen, dtype=torch.float64), sigma)[0, 0]
        # rho(d) = exp(-d^2 / (4 sigma^2)): half at 2 sigma sqrt(ln 2)
        assert correlation_length(field, "signed") == pytest.approx(2 * sigma * math.sqrt(math.log(2)), rel=0.1)
    assert blur_sigma_for(2 * 3.0 * math.sqrt(math.log(2))) == pytest.approx(3.0)
    assert blur_sigma_for(0.5) == 0.0
    blocks = torch.kron(torch.randn(16, 16, generator=gen), torch.ones(8, 8))  # rollout-like 8x8 blocks
    assert 3.0 < correlation_length(blocks) < 6.0  # a linear fall over the block: half near 4 px
    assert math.isnan(correlation_length(torch.ones(8, 8)))


@pytest.mark.parametrize("target", [0.5, 3.0, 6.0])
def test_random_smooth_maps_have_the_target_correlation_length(target: float) -> None:
    method = RandomSmooth(correlation_length=target)
    images = torch.zeros(4, 3, 96, 128)
    maps = method.attribute(None, images, torch.ones(4, 1, 96, 128), seeds=[1, 2, 3, 4]).maps  # type: ignore[arg-type]
    assert maps.shape == (4, 1, 96, 128) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    measured = np.median([correlation_length(m[0]) for m in maps])
    assert measured == pytest.approx(target, rel=0.15, abs=0.1)
    again = method.attribute(None, images[:1], torch.ones(1, 1, 96, 128), seeds=[3]).maps  # type: ignore[arg-type]
    assert torch.equal(again[0], maps[2])  # per-image seeds: independent of the batch
    assert not method.signed and method.stochastic


def test_smoothness_summary_and_file(tmp_path) -> None:
    lengths = {"saliency": [1.0, 1.2, float("nan")], "ig": [0.8, 1.0, 1.4], "rollout": [5.0, 6.0, 7.0],
               "random": [0.5, 0.5]}
    summary = smoothness_summary(lengths, ["saliency", "ig", "rollout", "absent"])
    assert summary["per_method"]["saliency"] == pytest.approx(1.1) and summary["n_maps"]["saliency"] == 2
    assert summary["correlation_length_px"] == pytest.approx(1.1)  # median of 1.1, 1.0, 6.0
    assert summary["match_methods"] == ["saliency", "ig", "rollout"]
    with pytest.raises(DataError, match="no finite correlation length"):
        smoothness_summary({"random": [0.5]}, ["saliency"])
    path = tmp_path / "smoothness.json"
    path.write_text(json.dumps(summary))
    assert read_correlation_length(path) == pytest.approx(1.1)
    assert RandomSmooth(correlation_length_file=path).correlation_length == pytest.approx(1.1)
    (tmp_path / "bad.json").write_text('{"correlation_length_px": -1}')
    with pytest.raises(DataError, match="bad.json"):
        read_correlation_length(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        read_correlation_length(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="methods.random_smooth.correlation_length"):
        build_method("random_smooth", {"correlation_length": "auto"})
    assert isinstance(build_method("random_smooth", {"correlation_length": 2.0, "match_methods": ["ig"]}), RandomSmooth)
