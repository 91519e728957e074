"""The trainer: it learns, saves weights that reload strictly and reproduce its metrics, and is deterministic."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from depthxai.data.frames import resize_depth_nearest
from depthxai.data.synthetic import generate_dataset
from depthxai.errors import TrainingError
from depthxai.models import DepthModel, build_model, get_card, load_depth_model, load_weights
from depthxai.models import train as T
from depthxai.models.train import TrainConfig, evaluate_on_split, train_model

METER = "meter_xxs_synthindoor"


@pytest.fixture(scope="module")
def tiny_indoor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthindoor")
    generate_dataset(root, "synthindoor", "indoor", n_train=8, n_test=4, seed=3, size=(48, 64), progress=False)
    return root


def _config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = dict(epochs=4, batch_size=4, lr=2e-3, weight_decay=1e-4, seed=7, threads=1)
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tiny_indoor: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    metrics = train_model(METER, tiny_indoor, _config(), out / "w.pt", out / "metrics.json", progress=False)
    return out / "w.pt", out / "metrics.json", metrics


def test_training_learns_and_writes_metrics(trained: tuple[Path, Path, dict[str, float]]) -> None:
    _, metrics_path, metrics = trained
    record = json.loads(metrics_path.read_text())
    for key in ("delta1", "abs_rel", "rmse", "train_seconds", "train_cpu_seconds", "epochs", "n_train", "n_test",
                "final_loss"):
        assert isinstance(record[key], float) and math.isfinite(record[key]), key
        assert record[key] == metrics[key]
    assert record["model"] == METER and record["dataset"] == "synthindoor"
    assert record["config"]["epochs"] == 4 and record["config"]["seed"] == 7
    assert (record["epochs"], record["n_train"], record["n_test"]) == (4.0, 8.0, 4.0)
    losses = record["epoch_losses"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert record["final_loss"] == losses[-1]
    assert 0.0 <= record["delta1"] <= 1.0 and record["rmse"] > 0


def test_weights_reload_strictly_and_reproduce_the_test_metrics(
        trained: tuple[Path, Path, dict[str, float]], tiny_indoor: Path) -> None:
    weights, _, metrics = trained
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # The official key layout: exactly the keys of a freshly built network (no parametrisation left over).
    assert list(state) == list(build_model(METER).state_dict())
    load_weights(build_model(METER), weights)  # strict
    model = load_depth_model(METER, weights)
    torch.set_num_threads(1)  # the thread count the trainer evaluated with (it changes float summation order)
    again = evaluate_on_split(model, tiny_indoor, "test")
    for key in ("delta1", "abs_rel", "rmse"):
        assert again[key] == metrics[key], key


@pytest.mark.slow
def test_same_seed_same_weights_bitwise(tiny_indoor: Path, tmp_path: Path,
                                        trained: tuple[Path, Path, dict[str, float]]) -> None:
    weights, _, _ = trained
    train_model(METER, tiny_indoor, _config(), tmp_path / "a.pt", tmp_path / "a.json", progress=False)
    reference = torch.load(weights, weights_only=True)
    again = torch.load(tmp_path / "a.pt", weights_only=True)
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    train_model(METER, tiny_indoor, _config(seed=8), tmp_path / "b.pt", tmp_path / "b.json", progress=False)
    other = torch.load(tmp_path / "b.pt", weights_only=True)
    assert not all(torch.equal(reference[k], other[k]) for k in reference)


def test_low_res_epochs_and_time_limit(tiny_indoor: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_train")
    with caplog.at_level(logging.INFO, logger="test_train"):
        metrics = train_model(METER, tiny_indoor, _config(epochs=3, low_res_epochs=2, low_res_size=(128, 192),
                                                          max_minutes=0.0), tmp_path / "w.pt", tmp_path / "m.json",
                              log=log, progress=False)
    # max_minutes=0: stop after the first epoch, which ran at the low resolution.
    assert metrics["epochs"] == 1.0
    assert "epoch 1/3 (128x192)" in caplog.text and "stopping after epoch 1" in caplog.text
    load_weights(build_model(METER), tmp_path / "w.pt")


def test_pixelformer_trains_through_the_same_code(tiny_indoor: Path, tmp_path: Path) -> None:
    name = "pixelformer_nano07_synthindoor"
    metrics = train_model(name, tiny_indoor, _config(epochs=1, ema=0.0), tmp_path / "w.pt", tmp_path / "m.json",
                          progress=False)
    model = load_depth_model(name, tmp_path / "w.pt")
    torch.set_num_threads(1)
    assert evaluate_on_split(model, tiny_indoor)["delta1"] == metrics["delta1"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="low_res_epochs"):
        _config(epochs=2, low_res_epochs=2, low_res_size=(64, 64))
    with pytest.raises(ValueError, match="low_res_size"):
        _config(low_res_epochs=1)
    with pytest.raises(ValueError, match="lr"):
        _config(lr=0.0)
    with pytest.raises(ValueError, match="crop_epochs"):
        _config(epochs=2, crop_epochs=3, crop_size=(32, 32))
    with pytest.raises(ValueError, match="crop_size"):
        _config(crop_epochs=1)
    assert _config(epochs=2, crop_epochs=2, crop_size=(32, 32)).crop_epochs == 2  # every epoch on crops is allowed


def test_random_crops_cut_the_same_window_from_image_and_depth() -> None:
    rgb = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).reshape(2, 3, 6, 8)
    depth = torch.arange(2 * 6 * 8, dtype=torch.float32).reshape(2, 1, 6, 8) + 1000
    crops, depth_crops = T.random_crops(rgb, depth, (4, 5), torch.Generator().manual_seed(3))
    assert crops.shape == (2, 3, 4, 5) and depth_crops.shape == (2, 1, 4, 5)
    for i in range(2):
        # Recover the window from its first value (the tensors count up row by row) and compare slices.
        first = int(depth_crops[i, 0, 0, 0]) - 1000 - i * 48
        top, left = divmod(first, 8)
        assert 0 <= top <= 2 and 0 <= left <= 3
        assert torch.equal(crops[i], rgb[i, :, top : top + 4, left : left + 5])
        assert torch.equal(depth_crops[i], depth[i, :, top : top + 4, left : left + 5])
    # The windows come from the generator: the same seed, the same windows; all positions are reachable.
    again = T.random_crops(rgb, depth, (4, 5), torch.Generator().manual_seed(3))[0]
    assert torch.equal(again, crops)
    gen = torch.Generator().manual_seed(0)
    corners = {int(T.random_crops(rgb[:1], depth[:1], (4, 5), gen)[1][0, 0, 0, 0]) - 1000 for _ in range(400)}
    assert corners == {t * 8 + x for t in range(3) for x in range(4)}
    with pytest.raises(ValueError, match="larger than the training images"):
        T.random_crops(rgb, depth, (7, 5), gen)


def test_crop_epochs_train_on_windows(tiny_indoor: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_train_crops")
    with caplog.at_level(logging.INFO, logger="test_train_crops"):
        metrics = train_model(METER, tiny_indoor, _config(epochs=2, crop_epochs=1, crop_size=(128, 192)),
                              tmp_path / "w.pt", tmp_path / "m.json", log=log, progress=False)
    assert "epoch 1/2 (128x192 crops)" in caplog.text and "epoch 2/2 (192x256)" in caplog.text
    assert metrics["epochs"] == 2.0 and 0 < metrics["train_cpu_seconds"]
    load_weights(build_model(METER), tmp_path / "w.pt")


def test_silog_loss_matches_formula_and_survives_negative_outputs() -> None:
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 5, 6, generator=gen) * 5 + 0.5
    pred = gt * torch.exp(0.3 * torch.randn(2, 1, 5, 6, generator=gen))
    valid = torch.rand(2, 1, 5, 6, generator=gen) > 0.3
    loss = T.silog_loss(pred, gt, valid, floor_m=0.001)
    e = np.log(pred[valid].numpy().astype(np.float64)) - np.log(gt[valid].numpy().astype(np.float64))
    expected = 10 * math.sqrt(np.mean(e**2) - 0.85 * np.mean(e) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    # Negative or zero outputs still give a finite loss and a gradient that pushes them up.
    raw = torch.full((1, 1, 2, 2), -0.5, requires_grad=True)
    bad = T.silog_loss(raw, torch.full((1, 1, 2, 2), 3.0), torch.ones(1, 1, 2, 2, dtype=torch.bool), floor_m=0.01)
    bad.backward()
    assert math.isfinite(float(bad.detach())) and raw.grad is not None and bool((raw.grad < 0).all())


def test_resize_depth_nearest_never_blends_invalid_pixels() -> None:
    depth = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 4.0]]).repeat(3, 5)  # 6 x 20
    out = resize_depth_nearest(depth, (5, 13))
    assert out.shape == (5, 13)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_init_output_scale_sets_the_median_prediction() -> None:
    torch.manual_seed(0)
    model = DepthModel(build_model(METER), get_card(METER))
    before = {k: v.clone() for k, v in model.net.state_dict().items() if "running" in k}
    rgb = torch.rand(4, 3, 192, 256, generator=torch.Generator().manual_seed(1))
    layer = T.init_output_scale(model, rgb, target_m=3.5)
    assert layer is model.net.decoder.conv2d_out
    # The measuring pass left the BatchNorm running statistics as built.
    after = model.net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    model.train()  # the first training steps see BatchNorm on batch statistics
    with torch.no_grad():
        pred = model(rgb)
    assert float(pred.median()) == pytest.approx(3.5, rel=1e-3)
    assert float((pred > 0).float().mean()) > 0.95
    # PixelFormer's bounded head is left alone.
    pixelformer = DepthModel(build_model("pixelformer_nano07_synthindoor"), get_card("pixelformer_nano07_synthindoor"))
    assert T.init_output_scale(pixelformer, rgb[:1], 3.5) is None


def test_smooth_upsampling_has_no_checkerboard_and_unconstrains_to_plain_weights() -> None:
    torch.manual_seed(0)
    net = build_model(METER)
    keys = list(net.state_dict())
    layers = T.smooth_upsampling(net)
    assert len(layers) == 3
    conv = layers[-1]
    assert isinstance(conv, nn.ConvTranspose2d)
    with torch.no_grad():
        out = conv(torch.ones(1, conv.in_channels, 6, 6))[0]
    interior = out[:, 2:-2, 2:-2]
    # Every output pixel of a constant input has the same value (a free kernel differs between parities).
    assert torch.allclose(interior, interior[:, :1, :1].expand_as(interior), rtol=1e-5, atol=1e-6)
    weight = conv.weight.detach().clone()
    profile = torch.tensor([0.5, 1.0, 0.5])
    assert torch.allclose(weight, weight[:, :, 1:2, 1:2] * (profile[:, None] * profile[None, :]))
    T.unconstrain(layers)
    assert list(net.state_dict()) == keys and torch.equal(conv.weight, weight)
    assert isinstance(conv.weight, nn.Parameter)


def test_a_diverging_loss_stops_training_naming_the_epoch_step_and_setting(
        tiny_indoor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = T.silog_loss

    def nan_at_step_two(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(T, "silog_loss", nan_at_step_two)
    with pytest.raises(TrainingError, match=r"diverged in epoch 1, step 2: the loss is nan; lower the learning rate "
                                            r"\(config key models\.meter_xxs\.train\.lr, now 0\.002\)"):
        train_model(METER, tiny_indoor, _config(epochs=2), tmp_path / "w.pt", tmp_path / "m.json", progress=False)
    assert not (tmp_path / "w.pt").exists() and not (tmp_path / "m.json").exists()  # nothing that looks complete


def test_non_finite_parameters_stop_training_at_the_end_of_the_epoch(
        tiny_indoor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a finite loss whose gradient is NaN (0 * d sqrt(x)/dx at x = 0): the optimiser writes NaN into the weights
    calls = {"n": 0}
    original = T.silog_loss

    def nan_gradient_at_step_two(pred, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = original(pred, *args, **kwargs)
        return loss + 0.0 * torch.sqrt(pred.sum() * 0.0) if calls["n"] == 2 else loss

    monkeypatch.setattr(T, "silog_loss", nan_gradient_at_step_two)
    with pytest.raises(TrainingError, match=r"diverged in epoch 1: parameter \S+ holds non-finite values; lower the "
                                            r"learning rate \(config key models\.meter_xxs\.train\.lr, now 0\.002\)"):
        train_model(METER, tiny_indoor, _config(epochs=2), tmp_path / "w.pt", tmp_path / "m.json", progress=False)
    assert not (tmp_path / "w.pt").exists()
