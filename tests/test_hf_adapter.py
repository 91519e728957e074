"""Model adapters: transformers depth models (``hf:``), a user's module (``module:``), the one entry point and its
one-line errors. The transformers models are tiny random ones built from configs and saved to a tmp dir (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from tiny_nets import build_tiny_depth_net

from depthxai.attribution import AttentionRollout, IntegratedGradients, TargetModel
from depthxai.errors import CheckpointError, ConfigError, DataError, DepthXAIError
from depthxai.models import save_state_dict
from depthxai.models.adapters import load_any_depth_model, make_card
from depthxai.models.registry import IMAGENET_MEAN, IMAGENET_STD

KINDS = ("depth_anything", "dpt", "glpn", "zoedepth")


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    from hf_fixtures import save_tiny_model

    root = tmp_path_factory.mktemp("hf")
    dirs = {kind: save_tiny_model(kind, root / kind) for kind in KINDS}
    dirs["depth_anything_metric"] = save_tiny_model("depth_anything", root / "da_metric", relative=False)
    return dirs


def load(dirs: dict[str, Path], kind: str, **card: object) -> torch.nn.Module:
    if kind == "glpn":  # GLPN's processor has no fixed size
        card.setdefault("input_size", (32, 32))
    return load_any_depth_model(f"hf:{dirs[kind]}", **card)  # type: ignore[arg-type]


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, DepthXAIError)
    return text


# ---------------------------------------------------------------------------------------------- hf: cards


def test_cards_come_from_processor_and_config(hf_dirs: dict[str, Path]) -> None:
    da = load(hf_dirs, "depth_anything").card
    assert (da.arch, da.variant, da.input_size, da.output_kind) == ("hf", "depth_anything", (56, 56), "relative")
    assert da.imagenet_norm and da.mean == pytest.approx(IMAGENET_MEAN) and da.std == pytest.approx(IMAGENET_STD)
    assert (da.min_depth, da.max_depth, da.output_unit_m) == (0.0, float("inf"), 1.0)
    metric = load(hf_dirs, "depth_anything_metric").card
    assert (metric.output_kind, metric.min_depth, metric.max_depth) == ("metric", 1e-3, 20.0)
    dpt = load(hf_dirs, "dpt").card
    assert (dpt.output_kind, dpt.input_size, dpt.mean, dpt.std) == ("relative", (48, 48), (0.5,) * 3, (0.5,) * 3)
    glpn = load(hf_dirs, "glpn").card  # GLPN rescales to [0, 1] and does not normalise
    assert (glpn.output_kind, glpn.imagenet_norm, glpn.max_depth, glpn.input_size) == ("metric", False, 10.0, (32, 32))
    zoe = load(hf_dirs, "zoedepth").card
    assert (zoe.output_kind, zoe.min_depth, zoe.max_depth, zoe.input_size) == ("metric", 0.001, 10.0, (32, 32))
    # keywords win over the files
    over = load(hf_dirs, "depth_anything", input_size=(42, 70), output_kind="metric", max_depth=5.0).card
    assert (over.input_size, over.output_kind, over.max_depth) == ((42, 70), "metric", 5.0)


def test_processor_normalisation_is_folded_for_rgb01() -> None:
    from depthxai.models.adapters.hf import processor_fields

    x = torch.rand(3, 4, 5, dtype=torch.float64)
    cases = [  # (processor dict, what the network sees for RGB x in [0, 1])
        ({"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.4, 0.5, 0.6],
          "image_std": [0.2, 0.25, 0.5]},
         (x - torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)),
        ({"do_rescale": False, "do_normalize": True, "image_mean": 127.5, "image_std": 127.5},
         (255 * x - 127.5) / 127.5),
        ({"do_rescale": False, "do_normalize": False}, 255 * x),
        ({"do_rescale": True, "rescale_factor": 1 / 127.5, "do_normalize": False}, 2 * x),
    ]
    for proc, expected in cases:
        fields = processor_fields(proc)
        mean = torch.tensor(fields["mean"], dtype=torch.float64).view(3, 1, 1)
        std = torch.tensor(fields["std"], dtype=torch.float64).view(3, 1, 1)
        torch.testing.assert_close((x - mean) / std, expected.double())
    assert processor_fields({"do_rescale": True, "rescale_factor": 1 / 255}) == {}  # plain RGB in [0, 1]
    assert processor_fields(None) == {}
    # the size is rounded to the nearest multiple, as DPT's processor does
    for (height, width), expected in (((518, 700), (518, 700)), ((500, 690), (504, 686))):
        size = {"height": height, "width": width}
        assert processor_fields({"size": size, "ensure_multiple_of": 14})["input_size"] == expected


# ---------------------------------------------------------------------------------------------- hf: forward


@pytest.mark.parametrize("kind", KINDS)
def test_forward_is_the_transformers_depth_at_input_size(hf_dirs: dict[str, Path], kind: str) -> None:
    model = load(hf_dirs, kind)
    h, w = model.card.input_size
    gen = torch.Generator().manual_seed(3)
    x = torch.rand((2, 3, h, w), generator=gen)
    # independent: the processor's arithmetic on 0..255 pixels, then the transformers model itself
    proc = model.card
    pixels = x * 255 / 255.0
    if proc.imagenet_norm:
        pixels = (pixels - torch.tensor(proc.mean).view(1, 3, 1, 1)) / torch.tensor(proc.std).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = model.net.model(pixel_values=pixels).predicted_depth[:, None]
        depth = model(x)
        native = model.native(x)
    assert depth.shape == (2, 1, h, w) and depth.dtype == torch.float32
    torch.testing.assert_close(native, predicted * model.card.output_unit_m)
    torch.testing.assert_close(depth, F.interpolate(predicted, size=(h, w), mode="bilinear", align_corners=False))
    assert float(depth.std()) > 1e-3  # the tiny random model is not constant
    # gradients of the target reach every input pixel's neighbourhood
    probe = x.clone().requires_grad_(True)
    TargetModel(model)(probe, torch.full((2, 1, h, w), 1.0 / (h * w))).sum().backward()
    assert probe.grad is not None and bool(torch.isfinite(probe.grad).all()) and float(probe.grad.abs().sum()) > 0


def test_integrated_gradients_completeness_on_depth_anything(hf_dirs: dict[str, Path]) -> None:
    model = load(hf_dirs, "depth_anything")
    gen = torch.Generator().manual_seed(4)
    x = torch.rand((1, 3, 56, 56), generator=gen)
    weights = torch.rand((1, 1, 56, 56), generator=gen)
    weights = weights / weights.sum()
    with torch.no_grad():  # independent: the target at the input and at the black baseline
        difference = TargetModel(model)(x, weights) - TargetModel(model)(torch.zeros_like(x), weights)
    assert abs(float(difference)) > 0.1
    # the tiny random model is far rougher than a trained one: 128 Gauss-Legendre points bring the error below 1 %
    result = IntegratedGradients(n_steps=128, internal_batch_size=64).attribute(model, x, weights)
    delta = result.extras["convergence_delta"]
    torch.testing.assert_close(result.maps.sum(dim=(1, 2, 3)) - difference, delta, rtol=1e-3, atol=1e-5)
    assert float(delta.abs()) <= 0.01 * float(difference.abs()), (delta, difference)


def test_rollout_is_refused_for_a_model_whose_attention_it_cannot_read(hf_dirs: dict[str, Path]) -> None:
    model = load(hf_dirs, "glpn")  # GLPN's efficient attention attends to reduced keys: not square
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="attention rollout cannot read") as exc:
        AttentionRollout().attribute(model, x, torch.full((1, 1, 32, 32), 1 / 1024))
    assert f"hf:{hf_dirs['glpn']}" in one_line(exc)


def test_hf_errors_are_one_line(hf_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory") as exc:
        load_any_depth_model(f"hf:{tmp_path / 'absent'}")
    assert "absent" in one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot load a transformers depth model") as exc:
        load_any_depth_model(f"hf:{tmp_path / 'empty'}")
    one_line(exc)
    with pytest.raises(ConfigError, match="hf models take their weights") as exc:
        load_any_depth_model(f"hf:{hf_dirs['dpt']}", weights=tmp_path / "w.pt")
    one_line(exc)
    with pytest.raises(ConfigError, match="missing input_size") as exc:
        load_any_depth_model(f"hf:{hf_dirs['glpn']}")
    assert "glpn" in one_line(exc)
    with pytest.raises(ConfigError, match="unknown card field") as exc:
        load_any_depth_model(f"hf:{hf_dirs['dpt']}", resolution=3)
    one_line(exc)


# ---------------------------------------------------------------------------------------------- module:


def write_module_weights(folder: Path, squeeze: bool = False, card: dict[str, object] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "tiny.pt"
    save_state_dict(weights, build_tiny_depth_net(squeeze=squeeze, seed=2).state_dict())
    if card is not None:
        (folder / "tiny.yaml").write_text(yaml.safe_dump(card))
    return weights


@pytest.mark.parametrize("squeeze", [False, True])
def test_module_adapter_reads_the_card_beside_the_weights(tmp_path: Path, squeeze: bool) -> None:
    card = {"input_size": [24, 32], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.25], "output_unit_m": 0.01,
            "max_depth": 10.0, "factory_kwargs": {"squeeze": squeeze}}
    weights = write_module_weights(tmp_path, squeeze, card)
    model = load_any_depth_model("module:tiny_nets:build_tiny_depth_net", weights)
    assert (model.card.arch, model.card.input_size, model.card.output_unit_m) == ("module", (24, 32), 0.01)
    assert model.card.mean == (0.5, 0.4, 0.3) and model.card.output_kind == "metric"
    reference = build_tiny_depth_net(squeeze=False, seed=2).eval()  # same weights, always (B, 1, h, w)
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.2, 0.25]).view(1, 3, 1, 1)
        raw = reference((x - mean) / std)
        torch.testing.assert_close(model.native(x), 0.01 * raw)
        upsampled = F.interpolate(0.01 * raw, size=(24, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), upsampled)
    # keywords win over the YAML; card.yaml is found too
    (tmp_path / "tiny.yaml").rename(tmp_path / "card.yaml")
    model = load_any_depth_model("module:tiny_nets:build_tiny_depth_net", weights, input_size=(16, 16), output_unit_m=1)
    assert model.card.input_size == (16, 16) and model.card.output_unit_m == 1.0


def test_module_errors_are_one_line(tmp_path: Path) -> None:
    weights = write_module_weights(tmp_path, card={"input_size": [16, 16]})
    name = "module:tiny_nets:build_tiny_depth_net"
    with pytest.raises(ConfigError, match="needs the network's weights") as exc:
        load_any_depth_model(name)
    assert name in one_line(exc)
    with pytest.raises(CheckpointError, match="not found") as exc:
        load_any_depth_model(name, tmp_path / "missing.pt")
    assert name in one_line(exc)
    with pytest.raises(ConfigError, match=r"returned shape \(1, 3, 16, 16\)") as exc:
        load_any_depth_model("module:tiny_nets:build_wrong_shape_net", _other_weights(tmp_path))
    assert "build_wrong_shape_net" in one_line(exc)
    with pytest.raises(CheckpointError, match="does not fit") as exc:  # the weights of another network
        load_any_depth_model(name, weights, factory_kwargs={"width": 4})
    assert name in str(exc.value)
    with pytest.raises(ConfigError, match="cannot import") as exc:
        load_any_depth_model("module:no_such_package.nets:build", weights)
    one_line(exc)
    with pytest.raises(ConfigError, match="no callable 'nothing'") as exc:
        load_any_depth_model("module:tiny_nets:nothing", weights)
    one_line(exc)
    with pytest.raises(ConfigError, match="not a torch nn.Module") as exc:
        load_any_depth_model("module:tiny_nets:not_a_module", weights)
    one_line(exc)
    with pytest.raises(ConfigError, match="module:<python.module>:<factory>") as exc:
        load_any_depth_model("module:tiny_nets", weights)
    one_line(exc)
    (tmp_path / "tiny.yaml").write_text("mean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\n")
    with pytest.raises(ConfigError, match="missing input_size") as exc:
        load_any_depth_model(name, weights)
    one_line(exc)
    (tmp_path / "tiny.yaml").write_text("input_size: [16, 16]\nsize: 3\n")
    with pytest.raises(ConfigError, match="unknown key") as exc:
        load_any_depth_model(name, weights)
    one_line(exc)
    (tmp_path / "tiny.yaml").unlink()
    model = load_any_depth_model(name, weights, input_size=(16, 16))  # no YAML: keywords alone
    with pytest.raises(ConfigError, match="attention rollout cannot read") as exc:
        AttentionRollout().attribute(model, torch.rand(1, 3, 16, 16), torch.full((1, 1, 16, 16), 1 / 256))
    assert name in one_line(exc)


def _other_weights(folder: Path) -> Path:
    from tiny_nets import build_wrong_shape_net

    path = folder / "wrong.pt"
    save_state_dict(path, build_wrong_shape_net().state_dict())
    (folder / "wrong.yaml").write_text("input_size: [16, 16]\n")
    return path


# ---------------------------------------------------------------------------------------------- the entry point


def test_entry_point_dispatches_and_names_the_model(tmp_path: Path) -> None:
    model = load_any_depth_model("meter_xxs_nyu")  # the registry, unchanged
    assert model.card.arch == "meter" and model.card.output_kind == "metric"
    assert model.card.mean == IMAGENET_MEAN and torch.equal(model.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    with pytest.raises(ConfigError, match="unknown model 'meter_xxl_nyu'") as exc:
        load_any_depth_model("meter_xxl_nyu")
    assert "hf:<hub-id-or-dir>" in one_line(exc)
    with pytest.raises(ConfigError, match="unknown prefix 'torchhub:'") as exc:
        load_any_depth_model("torchhub:intel/midas")
    one_line(exc)
    with pytest.raises(CheckpointError, match="weights file .* not found") as exc:
        load_any_depth_model("meter_xxs_nyu", tmp_path / "missing.pt")
    assert "meter_xxs_nyu" in one_line(exc)
    with pytest.raises(ConfigError, match="card is fixed") as exc:
        load_any_depth_model("meter_xxs_nyu", input_size=(64, 64))
    one_line(exc)


def test_make_card_checks_fields() -> None:
    def card(**fields: object) -> object:
        return make_card("module:x:y", "module", "y", "x:y", {}, {"input_size": (8, 8), **fields})

    assert card().imagenet_norm is False  # type: ignore[attr-defined]
    for fields, message in [({"mean": (0.5, 0.5, 0.5)}, "both mean and std"),
                            ({"mean": (0.5, 0.5), "std": (1, 1)}, "three finite numbers"),
                            ({"mean": (0, 0, 0), "std": (1, 0, 1)}, "std must be positive"),
                            ({"output_kind": "disparity"}, "output_kind must be one of"),
                            ({"min_depth": 5, "max_depth": 1}, "min_depth < max_depth"),
                            ({"input_size": (8, 0)}, "input_size must be positive"),
                            ({"output_unit_m": -1}, "output_unit_m must be positive")]:
        with pytest.raises(ConfigError, match=message):
            card(**fields)


def test_hf_without_transformers_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ConfigError, match=r'pip install "depthxai\[hf\]"') as exc:
        load_any_depth_model("hf:depth-anything/Depth-Anything-V2-Small-hf")
    one_line(exc)
