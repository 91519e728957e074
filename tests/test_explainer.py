"""The learned explainer: network shapes, each loss term against a direct formula, a tiny seeded training run.

The training tests use a tiny stand-in depth model (a fixed random two-layer conv net, wrapped in a
:class:`DepthModel` with its own card) on 8 + 4 synthetic indoor scenes rendered at 64x64.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from depthxai.attribution import METHOD_NAMES, TargetSpec, build_method, target_weights
from depthxai.attribution.explainer import (
    DEFAULT_LOSS_WEIGHTS,
    Explainer,
    ExplainerConfig,
    ExplainerNet,
    area_penalty,
    complement_term,
    compose,
    evaluate_explainer,
    log_depth,
    preservation_terms,
    random_masks_like,
    sample_target,
    total_variation,
    train_explainer,
    width_of_state,
)
from depthxai.data.frames import load_split_frames
from depthxai.data.io import read_dataset_info
from depthxai.data.synthetic import generate_dataset
from depthxai.errors import CheckpointError, ConfigError
from depthxai.models.checkpoint import read_state_dict
from depthxai.models.wrapper import DepthModel

SIZE = (64, 64)


# --------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("size", [(32, 48), (64, 64), (50, 70), (17, 33)])
def test_net_output_shape_and_range(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    net = ExplainerNet(width=4).eval()
    # a trained-looking net: random head so the output is not constant
    nn.init.normal_(net.head.weight, std=3.0)
    images = torch.rand(2, 3, *size)
    weights = torch.rand(2, 1, *size)
    with torch.no_grad():
        mask = net(images, weights)
        assert mask.shape == (2, 1, *size)
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
        assert float(mask.std()) > 1e-3
        # each image is normalised to max 1 before the net: scaling the weights changes nothing
        assert torch.allclose(net(images, weights * torch.tensor([3.0, 0.01]).view(2, 1, 1, 1)), mask, atol=1e-6)
        # one image's mask does not depend on its batch mate (GroupNorm, no batch statistics)
        assert torch.allclose(net(images[:1], weights[:1]), mask[:1], atol=1e-6)


def test_net_initial_mask_is_initial_area_and_width_is_readable() -> None:
    net = ExplainerNet(width=6, initial_area=0.2).eval()
    mask = net(torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32))
    assert torch.allclose(mask, torch.full_like(mask, 0.2), atol=1e-6)
    assert width_of_state(net.state_dict()) == 6
    with pytest.raises(CheckpointError):
        width_of_state({"other.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        net(torch.rand(1, 1, 32, 32), torch.ones(1, 1, 32, 32))


def test_default_width_has_a_few_hundred_thousand_parameters() -> None:
    n = sum(p.numel() for p in ExplainerNet().parameters())
    assert 2e5 < n < 6e5


# --------------------------------------------------------------------------------------------- losses


def test_area_penalty_zero_inside_linear_outside() -> None:
    masks = torch.stack([torch.full((1, 4, 5), v) for v in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)])
    got = area_penalty(masks, (0.1, 0.3))
    expected = torch.tensor([0.05, 0.0, 0.0, 0.0, 0.2, 0.7])
    assert torch.allclose(got, expected, atol=1e-6)
    # a non-constant mask: only its mean matters
    half = torch.zeros(1, 1, 4, 4)
    half[..., :2, :] = 1.0
    assert float(area_penalty(half, (0.1, 0.3))[0]) == pytest.approx(0.2)


def test_total_variation_of_checkerboard_stripes_and_random() -> None:
    rows, cols = np.indices((6, 8))
    checker = torch.from_numpy(((rows + cols) % 2).astype(np.float32))[None, None]
    stripes = torch.from_numpy((rows % 2).astype(np.float32))[None, None]
    assert float(total_variation(checker)[0]) == pytest.approx(2.0)
    assert float(total_variation(stripes)[0]) == pytest.approx(1.0)  # only vertical neighbours differ
    assert float(total_variation(torch.full((1, 1, 6, 8), 0.7))[0]) == 0.0
    rng = np.random.default_rng(0)
    m = rng.random((2, 1, 5, 7)).astype(np.float32)
    expected = [np.abs(np.diff(m[i, 0], axis=1)).mean() + np.abs(np.diff(m[i, 0], axis=0)).mean() for i in range(2)]
    assert np.allclose(total_variation(torch.from_numpy(m)).numpy(), expected, atol=1e-6)


def test_preservation_terms_match_direct_formulas() -> None:
    rng = np.random.default_rng(1)
    masked = rng.normal(size=(2, 1, 5, 6)).astype(np.float64)
    clean = rng.normal(size=(2, 1, 5, 6)).astype(np.float64)
    w = rng.random((2, 1, 5, 6))
    w /= w.sum(axis=(1, 2, 3), keepdims=True)
    target, whole, grad = preservation_terms(torch.from_numpy(masked), torch.from_numpy(clean), torch.from_numpy(w))
    for i in range(2):
        e = masked[i, 0] - clean[i, 0]
        assert float(target[i]) == pytest.approx(float((w[i, 0] * np.abs(e)).sum()))
        assert float(whole[i]) == pytest.approx(float(np.abs(e).mean()))
        gm = (np.abs(np.diff(masked[i, 0], axis=1) - np.diff(clean[i, 0], axis=1)).mean()
              + np.abs(np.diff(masked[i, 0], axis=0) - np.diff(clean[i, 0], axis=0)).mean())
        assert float(grad[i]) == pytest.approx(float(gm))
    # a constant offset of the log depth (a global scale change) costs no gradient term
    _, _, flat = preservation_terms(torch.from_numpy(clean) + 0.3, torch.from_numpy(clean), torch.from_numpy(w))
    assert torch.allclose(flat, torch.zeros(2, dtype=torch.float64), atol=1e-12)


def test_complement_term_is_a_bounded_hinge() -> None:
    clean = torch.zeros(1, 1, 1, 4)
    changed = torch.tensor([0.1, -0.7, 0.5, 0.0]).view(1, 1, 1, 4)
    w = torch.tensor([0.4, 0.3, 0.2, 0.1]).view(1, 1, 1, 4)
    # relu(0.5 - |change|) = 0.4, 0, 0, 0.5
    assert float(complement_term(changed, clean, w, margin=0.5)[0]) == pytest.approx(0.4 * 0.4 + 0.1 * 0.5)
    assert float(complement_term(clean, clean, w, margin=0.5)[0]) == pytest.approx(0.5)  # the bound
    assert float(complement_term(clean + 5.0, clean, w, margin=0.5)[0]) == 0.0


def test_log_depth_floor_and_composites() -> None:
    depth = torch.tensor([2.0, 0.5, 7.0])
    assert torch.allclose(log_depth(depth, 0.01), depth.log(), atol=1e-6)
    below = torch.tensor([-1.0, 0.0, -0.05], requires_grad=True)
    negative = log_depth(below, 0.01)
    assert float(negative[1].detach()) == pytest.approx(np.log(0.01 * np.log(2)))
    assert float(negative[2].detach()) == pytest.approx(np.log(0.01 * np.log1p(np.exp(-5.0))), rel=1e-5)
    assert float(negative[0].detach()) == pytest.approx(np.log(0.01) - 100.0)  # log softplus(z) = z far below the floor
    negative.sum().backward()
    assert below.grad is not None and bool(torch.isfinite(below.grad).all())
    x, r = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    m = torch.rand(2, 1, 4, 5)
    kept, removed = compose(x, r, m)
    assert torch.allclose(kept + removed, x + r, atol=1e-6)
    assert torch.allclose(kept, m * x + (1 - m) * r)
    kept1, removed1 = compose(x, r, torch.ones(2, 1, 4, 5))
    assert torch.equal(kept1, x) and torch.equal(removed1, r)


@pytest.mark.parametrize("kind", ["pixels", "blobs"])
def test_random_masks_keep_the_values_and_move_them(kind: str) -> None:
    mask = torch.rand(3, 1, 16, 24)
    rand = random_masks_like(mask, kind, torch.Generator().manual_seed(123))
    assert rand.shape == mask.shape
    assert torch.equal(rand.flatten(1).sort(dim=1).values, mask.flatten(1).sort(dim=1).values)
    assert float((rand - mask).abs().mean()) > 0.1


def test_sampled_boxes_are_valid_targets() -> None:
    gen = torch.Generator().manual_seed(3)
    depth = torch.rand(1, 1, 20, 30) + 1
    for _ in range(200):
        spec = sample_target("box", 0.25, gen)
        assert spec.box is not None
        top, left, bottom, right = spec.box
        assert 0 <= top < bottom <= 1 and 0 <= left < right <= 1 and bottom - top >= 0.15 - 1e-9
        assert float(target_weights(spec, depth).sum()) == pytest.approx(1.0)
    assert sample_target("near", 0.1, gen) == TargetSpec(kind="near", quantile=0.1)


def test_config_validation_names_the_key() -> None:
    assert ExplainerConfig(loss_weights={"tv": 2.0}).loss_weights == {**DEFAULT_LOSS_WEIGHTS, "tv": 2.0}
    with pytest.raises(ConfigError, match="explainer.loss_weights.sparsity"):
        ExplainerConfig(loss_weights={"sparsity": 1.0})
    with pytest.raises(ConfigError, match="explainer.area_range"):
        ExplainerConfig(area_range=(0.5, 0.2))
    with pytest.raises(ConfigError, match="explainer.replacement"):
        ExplainerConfig(replacement="zeros")
    with pytest.raises(ConfigError, match="explainer.target_kinds"):
        ExplainerConfig(target_kinds=("mean", "middle"))
    with pytest.raises(ConfigError, match="explainer.speed"):
        ExplainerConfig.from_config({"epochs": 2, "speed": 1})
    cfg = ExplainerConfig.from_config({"epochs": 2, "area_range": [0.2, 0.4], "target_kinds": ["near"]})
    assert cfg.area_range == (0.2, 0.4) and cfg.target_kinds == ("near",)
    assert json.loads(json.dumps(cfg.to_json()))["area_range"] == [0.2, 0.4]


# --------------------------------------------------------------------------------------------- training


#: the stand-in depth model, a fixed nonlinear net with spatial mixing (5x5 conv, tanh, dilated 5x5 conv, 1 + softplus;
#: weights drawn from N(0, 0.5^2) with seed 7): positive depth in metres (about 1-3 m)
TINY = {"input_size": SIZE, "imagenet_norm": True, "width": 6, "kernel": 5, "activation": "tanh", "body": 0,
        "head_kernel": 5, "dilation": 2, "offset": 1.0, "seed": 7, "init_std": 0.5}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explainer_data")
    generate_dataset(root, "synthindoor", "indoor", n_train=8, n_test=4, seed=5, size=SIZE, progress=False)
    return root


# one thread: results are bit-identical only at the same thread count, and one thread is fastest on a busy machine
TINY_CONFIG = ExplainerConfig(epochs=2, batch_size=2, lr=2e-2, width=4, seed=11, max_minutes=None, threads=1)


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory,
            tiny_model: Callable[..., DepthModel]) -> tuple[Path, dict, Path]:
    out = tmp_path_factory.mktemp("explainer_run")
    record = train_explainer(tiny_model(**TINY), tiny_data, TINY_CONFIG, out / "w.pt", out / "m.json", progress=False)
    return out, record, tiny_data


@pytest.mark.slow
def test_training_writes_weights_and_metrics(trained: tuple[Path, dict, Path]) -> None:
    out, record, _ = trained
    on_disk = json.loads((out / "m.json").read_text())
    assert on_disk["epochs"] == 2 and on_disk["n_train"] == 8 and on_disk["n_test"] == 4
    assert on_disk["config"]["seed"] == 11 and on_disk["model"] == "tiny_test_synthindoor"
    assert set(on_disk["final_losses"]) >= {"loss", *DEFAULT_LOSS_WEIGHTS, "mask_area"}
    # the total is the weighted sum of the terms (epoch means are linear)
    final = on_disk["final_losses"]
    weighted = sum(DEFAULT_LOSS_WEIGHTS[k] * final[k] for k in DEFAULT_LOSS_WEIGHTS)
    assert final["loss"] == pytest.approx(weighted, rel=1e-5)
    overall = on_disk["test"]["overall"]
    for key in ("preservation_explainer", "preservation_pixels", "preservation_blobs", "complement_explainer",
                "complement_ratio_blobs", "mask_area"):
        assert np.isfinite(overall[key])
    assert set(on_disk["test"]["by_kind"]) == set(TINY_CONFIG.target_kinds)
    assert on_disk["train_seconds"] > 0
    state = read_state_dict(out / "w.pt")  # weights_only loading
    assert width_of_state(state) == 4


@pytest.mark.slow
def test_training_decreases_the_loss(trained: tuple[Path, dict, Path]) -> None:
    _, record, _ = trained
    history = record["history"]
    assert len(history) == 2
    assert history[1]["loss"] < history[0]["loss"]


@pytest.mark.slow
def test_reloaded_weights_reproduce_the_masks_bit_for_bit(trained: tuple[Path, dict, Path],
                                                           tiny_model: Callable[..., DepthModel]) -> None:
    out, record, data = trained
    model = tiny_model(**TINY)
    explainer = Explainer(out / "w.pt")  # strict load, width read from the file
    test = load_split_frames(data, "test", read_dataset_info(data), model.card.input_size, model.card.input_crop)
    torch.set_num_threads(1)  # as during training (TINY_CONFIG.threads); the autouse fixture resets it
    again = evaluate_explainer(explainer.net, model, test.rgb, TINY_CONFIG, record["mean_rgb"],
                               floor_m=max(model.card.max_depth / 1000.0, 1e-3))
    assert again == record["test"]  # every mean area and error identical: the masks are identical
    with pytest.raises(CheckpointError):
        Explainer(out / "w.pt", width=5)


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(trained: tuple[Path, dict, Path], tmp_path: Path,
                                                         tiny_model: Callable[..., DepthModel]) -> None:
    out, _, data = trained
    train_explainer(tiny_model(**TINY), data, TINY_CONFIG, tmp_path / "a.pt", tmp_path / "a.json", progress=False)
    first, second = read_state_dict(out / "w.pt"), read_state_dict(tmp_path / "a.pt")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = dataclasses.replace(TINY_CONFIG, seed=12, epochs=1)
    train_explainer(tiny_model(**TINY), data, other, tmp_path / "b.pt", tmp_path / "b.json", progress=False)
    third = read_state_dict(tmp_path / "b.pt")
    assert not all(torch.equal(first[k], third[k]) for k in first)


@pytest.mark.slow
def test_build_method_returns_masks(trained: tuple[Path, dict, Path], tiny_model: Callable[..., DepthModel]) -> None:
    out, _, _ = trained
    assert "explainer" in METHOD_NAMES
    method = build_method("explainer", {"weights": str(out / "w.pt")})
    assert method.name == "explainer"
    model = tiny_model(**TINY)
    images = torch.rand(3, 3, *SIZE)
    with torch.no_grad():
        depth = model(images)
    weights = target_weights(TargetSpec(kind="near"), depth)
    maps = method.attribute(model, images, weights, seeds=[1, 2, 3]).maps
    assert maps.shape == (3, 1, *SIZE)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    net = ExplainerNet(width=4)
    net.load_state_dict(read_state_dict(out / "w.pt"), strict=True)
    with torch.no_grad():
        assert torch.equal(maps, net.eval()(images, weights))
    with pytest.raises(ConfigError, match="methods.explainer.weights"):
        build_method("explainer", {})
