"""METER re-implementation: official state-dict layout, parity with the official outputs, token layout, sizes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthxai.data.io import read_rgb
from depthxai.models import build_model, load_depth_model, load_weights, predict_image
from depthxai.models.meter import (
    Meter,
    attention_layers,
    build_meter,
    check_input_size,
    from_tokens,
    to_tokens,
)

PARAMETER_COUNTS = {"xxs": 713_464, "xs": 1_449_760, "s": 3_295_168}
N_REFERENCE_IMAGES = {"nyu": 8, "kitti": 2}


def read_manifest(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    """Rows ``(name, shape, dtype)`` of a ``state_dict_*.tsv`` manifest (header ``name shape dtype``)."""
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["name", "shape", "dtype"]
    rows = []
    for line in lines[1:]:
        name, shape, dtype = line.split("\t")
        rows.append((name, tuple(json.loads(shape)), dtype))
    return rows


def reference_cases(shared_dir: Path, dataset: str) -> list[Path]:
    """The official METER XXS reference sidecars of ``dataset``; fails if any is missing."""
    cases = sorted((shared_dir / "reference" / "meter").glob(f"{dataset}_xxs_*.json"))
    assert len(cases) == N_REFERENCE_IMAGES[dataset]
    return cases


def rgb_path(shared_dir: Path, sidecar: dict) -> Path:
    """The developer copy of the RGB file a sidecar used, checked against the sidecar's sha256."""
    if sidecar["dataset"] == "nyu":
        path = shared_dir / "data" / "nyu_test" / f"{sidecar['sample']}_colors.png"
    else:
        path = shared_dir / "data" / "kitti" / "rgb" / f"{sidecar['sample']}.png"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sidecar["rgb_sha256"], path
    return path


@pytest.fixture(scope="module")
def official_xxs(shared_dir: Path) -> dict:
    """``DepthModel`` per dataset with the official XXS checkpoint, eval mode."""
    return {
        dataset: load_depth_model(f"meter_xxs_{dataset}", shared_dir / "mirror" / f"build_model_best_{dataset}_xxs")
        for dataset in ("nyu", "kitti")
    }


# ------------------------------------------------------------------------------------------------------------
# Layout
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["xxs", "xs", "s"])
def test_state_dict_matches_official_manifest(shared_dir: Path, variant: str) -> None:
    expected = read_manifest(shared_dir / "reference" / "meter" / f"state_dict_{variant}.tsv")
    model = build_meter(variant)
    actual = [(name, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in model.state_dict().items()]
    assert len(actual) == len(expected) == 261
    assert [row[0] for row in actual] == [row[0] for row in expected]  # names and order
    assert actual == expected  # shapes and dtypes too
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNTS[variant]


def test_registry_builds_meter_variants() -> None:
    for name, variant in [("meter_xxs_nyu", "xxs"), ("meter_xs_kitti", "xs"), ("meter_s_synthroad", "s")]:
        model = build_model(name)
        assert isinstance(model, Meter) and model.variant == variant
        assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNTS[variant]


def test_unknown_variant_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'xl'.*xxs, xs, s"):
        build_meter("xl")


# ------------------------------------------------------------------------------------------------------------
# Parity with the official code and checkpoints
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["nyu", "kitti"])
def test_forward_matches_official_outputs(shared_dir: Path, dataset: str) -> None:
    # Strict, weights_only loading into the bare network.
    net = load_weights(build_meter("xxs"), shared_dir / "mirror" / f"build_model_best_{dataset}_xxs")
    expected_shape = (1, 1, 48, 64) if dataset == "nyu" else (1, 1, 48, 160)
    for case in reference_cases(shared_dir, dataset):
        arrays = np.load(case.with_suffix(".npz"))
        with torch.no_grad():
            output = net(torch.from_numpy(arrays["input"])).numpy()
        assert output.shape == arrays["output"].shape == expected_shape
        # Native units (cm / dm). Measured: max abs error <= 3.7e-4 (<= 11 float32 ulps, relative < 6e-7).
        np.testing.assert_allclose(output, arrays["output"], rtol=1e-4, atol=1e-4, err_msg=case.name)
        stats = json.loads(case.read_text())["output_stats"]
        assert output.mean() == pytest.approx(stats["mean"], rel=1e-5)


@pytest.mark.parametrize("dataset", ["nyu", "kitti"])
def test_predict_image_from_png_matches_official_depth(shared_dir: Path, official_xxs: dict, dataset: str) -> None:
    """End to end from the PNG through DepthModel (our preprocessing) to metres at full resolution.

    DepthModel resizes RGB/255 and then normalises; the official code normalises and then resizes. Both are
    linear, so the inputs differ by float noise only (NYU: <= 7e-7). On KITTI, one column of the 1242->636
    bilinear resize differs by up to 2.3e-5 between the torch builds (the reference used torch 2.15), the input
    being identical otherwise. Measured depth differences: NYU <= 6e-6 m, KITTI <= 3.1e-5 m (a few float32
    ulps at 40-76 m). atol = 1e-4 m (0.1 mm) leaves room for other CPUs' summation order and is still
    ~1000x below any depth error that a wrong preprocessing step would cause (e.g. a skipped normalisation
    shifts NYU depth by decimetres).
    """
    model = official_xxs[dataset]
    for case in reference_cases(shared_dir, dataset):
        sidecar = json.loads(case.read_text())
        depth = predict_image(model, read_rgb(rgb_path(shared_dir, sidecar)))
        expected = np.load(case.with_suffix(".npz"))["depth_m"]
        assert depth.dtype == np.float32 and depth.shape == expected.shape == tuple(sidecar["depth_m_shape"])
        np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-4, err_msg=case.name)


# ------------------------------------------------------------------------------------------------------------
# Token layout and attention sites (Attention Rollout)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch_size", [(2, 2), (3, 2)])
def test_token_to_pixel_mapping(patch_size: tuple[int, int]) -> None:
    ph, pw = patch_size
    height, width = 3 * ph, 4 * pw
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([rows, cols]).float()[None]  # (1, 2, H, W): each pixel holds its own (row, col)
    tokens = to_tokens(coords, patch_size)
    assert tokens.shape == (1, ph * pw, (height // ph) * (width // pw), 2)
    for p in range(ph * pw):
        pi, pj = divmod(p, pw)
        for n in range(tokens.shape[2]):
            hi, wi = divmod(n, width // pw)
            assert tokens[0, p, n].tolist() == [hi * ph + pi, wi * pw + pj]
    assert torch.equal(from_tokens(tokens, height, width, patch_size), coords)


def test_attend_outputs_follow_documented_layout() -> None:
    """Recompute every attention map from the feature map with the documented (p, n) -> pixel formula."""
    model = build_meter("xxs").eval()
    for module in model.modules():  # non-trivial norms so that a wrong layout cannot hide behind identities
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    sites = attention_layers(model)
    captured: dict[str, torch.Tensor] = {}
    handles = [site.softmax.register_forward_hook(lambda m, i, o, key=site.name: captured.__setitem__(key, o))
               for site in sites]
    blocks = [model.encoder.mvit[i] for i in range(3)]
    handles += [block.conv2.register_forward_hook(lambda m, i, o, key=str(k): captured.__setitem__(key, o))
                for k, block in enumerate(blocks)]
    batch, height, width = 2, 128, 192  # non-square, so that a row/column swap shows
    with torch.no_grad():
        model(torch.randn(batch, 3, height, width))
    for handle in handles:
        handle.remove()

    for site, block in zip(sites, blocks):
        features = captured[str(site.block_index)]  # (B, dim, h, w): the transformer's input map
        h, w = height // site.stride, width // site.stride
        ph, pw = site.patch_size
        assert features.shape[-2:] == (h, w)
        n_tokens = (h // ph) * (w // pw)
        probs = captured[site.name]
        assert probs.shape == (batch, ph * pw, 4, n_tokens, n_tokens)
        torch.testing.assert_close(probs.sum(-1), torch.ones(batch, ph * pw, 4, n_tokens))

        # Tokens gathered pixel by pixel with the docstring's formula.
        tokens = torch.empty(batch, ph * pw, n_tokens, features.shape[1])
        for p in range(ph * pw):
            pi, pj = divmod(p, pw)
            for n in range(n_tokens):
                hi, wi = divmod(n, w // pw)
                tokens[:, p, n] = features[:, :, hi * ph + pi, wi * pw + pj]
        pre_norm = block.transformer.layers[0][0]
        normed = F.layer_norm(tokens, pre_norm.norm.normalized_shape, pre_norm.norm.weight, pre_norm.norm.bias)
        query, key, _ = F.linear(normed, pre_norm.fn.to_qkv.weight).chunk(3, dim=-1)
        for head in range(4):
            q, k = query[..., head * 8:(head + 1) * 8], key[..., head * 8:(head + 1) * 8]
            expected = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
            torch.testing.assert_close(probs[:, :, head], expected, rtol=1e-5, atol=1e-6)


def test_attention_layers_lists_sites_from_input_to_output() -> None:
    model = build_meter("xs")
    sites = attention_layers(model)
    assert [(s.stride, s.patch_size, s.block_index, s.layer_index) for s in sites] == [
        (8, (2, 2), 0, 0), (16, (2, 2), 1, 0), (32, (2, 2), 2, 0)]
    modules = dict(model.named_modules())
    assert [s.name for s in sites] == [f"encoder.mvit.{i}.transformer.layers.0.0.fn.attend" for i in range(3)]
    assert all(modules[s.name] is s.softmax and isinstance(s.softmax, nn.Softmax) for s in sites)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sites[0].stride = 4  # type: ignore[misc]
    # Through the DepthModel wrapper the names gain its "net." prefix and still resolve.
    wrapped = load_depth_model("meter_xxs_synthroad")
    wrapped_modules = dict(wrapped.named_modules())
    wrapped_sites = attention_layers(wrapped)
    assert len(wrapped_sites) == 3
    assert all(wrapped_modules[s.name] is s.softmax and s.name.startswith("net.encoder.") for s in wrapped_sites)
    with pytest.raises(ValueError, match="no MobileViT block"):
        attention_layers(nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------------------
# Input sizes and gradients
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "out_size"), [((192, 256), (48, 64)), ((192, 636), (48, 160)),
                                                ((128, 448), (32, 112)), ((61, 121), (16, 32))])
def test_output_size(size: tuple[int, int], out_size: tuple[int, int]) -> None:
    model = build_meter("xxs").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, *size)).shape == (1, 1, *out_size)


def test_input_size_rule() -> None:
    # Independent statement of the rule (derived by hand in check_input_size's docstring).
    def valid(h: int, w: int) -> bool:
        return h % 64 in (0, 61, 62, 63) and w % 64 in (0, 57, 58, 59, 60, 61, 62, 63)

    for h in range(1, 260):
        for w in (h, 636, 256, 250):
            try:
                check_input_size(h, w)
                accepted = True
            except ValueError:
                accepted = False
            assert accepted == valid(h, w), (h, w)


@pytest.mark.parametrize("size", [(60, 64), (64, 56), (200, 256), (192, 630)])
def test_invalid_size_raises_helpful_error(size: tuple[int, int]) -> None:
    model = build_meter("xxs").eval()
    x = torch.rand(1, 3, *size)
    with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]}.*H mod 64 in \{{0, 61, 62, 63\}}.*nearest valid size"):
        model(x)
    # Without the up-front check the network itself fails on these sizes (the rule is not too strict).
    with torch.no_grad(), pytest.raises((ValueError, RuntimeError)):
        model.decoder(*model.encoder(x))


def test_nearest_valid_size_in_message() -> None:
    with pytest.raises(ValueError, match="nearest valid size is 192x633"):
        check_input_size(192, 630)
    with pytest.raises(ValueError, match="nearest valid size is 192x256"):
        check_input_size(200, 256)


def test_input_gradient_matches_finite_difference() -> None:
    """Captum takes gradients w.r.t. the RGB input: check autograd against a central difference (float64)."""
    model = load_depth_model("meter_xxs_synthindoor").double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    model(x).mean().backward()
    direction = torch.randn_like(x)
    eps = 1e-6
    with torch.no_grad():
        numeric = (model(x + eps * direction).mean() - model(x - eps * direction).mean()) / (2 * eps)
    analytic = (x.grad * direction).sum()
    assert x.grad.abs().sum() > 0
    assert analytic.item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-10)
