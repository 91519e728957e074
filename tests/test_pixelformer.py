"""PixelFormer re-implementation: official state-dict layout, window mechanics, nano07, and numerical parity
with the official code on name-seeded weights (../shared/reference/README.md, section "pixelformer/")."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from depthxai.models import build_model, get_card, load_weights
from depthxai.models.pixelformer import PixelFormer, build_pixelformer
from depthxai.models.pixelformer.sam import SkipAttentionBlock
from depthxai.models.pixelformer.swin import DropPath, SwinBlock, shifted_window_mask, window_merge, window_partition

PARAMETER_COUNTS = {"large07": 270_895_920, "base07": 140_432_340, "tiny07": 88_906_326}
KEY_COUNTS = {"large07": 485, "base07": 477, "tiny07": 317}


def read_manifest(path: Path) -> list[tuple[str, list[int], str]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["name", "shape", "dtype"]
    rows = []
    for line in lines[1:]:
        name, shape, dtype = line.split("\t")
        rows.append((name, json.loads(shape), dtype))
    return rows


def model_manifest(model: nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in model.state_dict().items()]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def reference_dir(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "pixelformer"
    if not path.is_dir():
        pytest.skip(f"PixelFormer reference files not found at {path}")
    return path


# ---------------------------------------------------------------- state-dict layout (official encoders)


@pytest.mark.parametrize("version", ["large07", "base07", "tiny07"])
def test_manifest_matches_official(version: str, reference_dir: Path) -> None:
    # Built on the meta device: shapes and dtypes without allocating 1 GB; values are checked elsewhere.
    with torch.device("meta"):
        model = build_pixelformer(version, max_depth=10.0)
    expected = read_manifest(reference_dir / f"state_dict_{version}.tsv")
    assert len(expected) == KEY_COUNTS[version]
    assert model_manifest(model) == expected
    assert count_parameters(model) == PARAMETER_COUNTS[version]
    # KITTI's max_depth is a plain attribute: same layout.
    with torch.device("meta"):
        kitti = build_pixelformer(version, max_depth=80.0)
    assert model_manifest(kitti) == expected


def test_registry_builds_pixelformer() -> None:
    card = get_card("pixelformer_nano07_synthroad")
    model = build_model(card.name)
    assert isinstance(model, PixelFormer)
    assert model.max_depth == 80.0 and model.bcp.max_depth == 80.0 and model.min_depth == 0.1


def test_unknown_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="huge07"):
        build_pixelformer("huge07")


# ---------------------------------------------------------------- window mechanics


def loop_relative_position_index(ws: int) -> torch.Tensor:
    """Relative-position index by enumeration: offsets (dy, dx) in [-(ws-1), ws-1], row-major in the table."""
    tokens = [(y, x) for y in range(ws) for x in range(ws)]
    offsets = [(dy, dx) for dy in range(-(ws - 1), ws) for dx in range(-(ws - 1), ws)]
    row_of = {offset: row for row, offset in enumerate(offsets)}
    return torch.tensor([[row_of[(yi - yj, xi - xj)] for (yj, xj) in tokens] for (yi, xi) in tokens])


def test_relative_position_index_buffers_are_correct() -> None:
    model = build_pixelformer("nano07")
    expected = loop_relative_position_index(7)
    buffers = {k: v for k, v in model.state_dict().items() if k.endswith("relative_position_index")}
    assert len(buffers) == 8 + 4  # one per Swin block (2+2+2+2) and per SAM
    for name, index in buffers.items():
        assert index.dtype == torch.int64, name
        assert torch.equal(index, expected), name
    tables = {k: v for k, v in model.state_dict().items() if k.endswith("relative_position_bias_table")}
    assert len(tables) == len(buffers) and all(t.shape[0] == 13 * 13 for t in tables.values())
    assert model.state_dict()["decoder.bottleneck.bn.num_batches_tracked"].dtype == torch.int64


def test_window_partition_round_trip_and_order() -> None:
    x = torch.arange(2 * 14 * 21 * 3, dtype=torch.float32).view(2, 14, 21, 3)
    windows = window_partition(x, 7)
    assert windows.shape == (2 * 2 * 3, 7, 7, 3)
    # window 4 = batch 0, window row 1, window col 1
    assert torch.equal(windows[4], x[0, 7:14, 7:14])
    assert torch.equal(window_merge(windows, 7, 14, 21), x)


@pytest.mark.parametrize(("height", "width", "ws", "shift"), [(14, 21, 7, 3), (7, 14, 7, 3), (12, 8, 4, 2)])
def test_shift_mask_forbids_exactly_the_wrapped_pairs(height: int, width: int, ws: int, shift: int) -> None:
    # Independent characterisation: after rolling by -shift, two tokens of a window may attend to each other
    # iff their original coordinates differ by exactly their coordinates in the rolled map (no wrap-around).
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([ys, xs], dim=-1).view(1, height, width, 2)
    rolled_orig = torch.roll(coords, shifts=(-shift, -shift), dims=(1, 2))
    win_orig = window_partition(rolled_orig, ws).reshape(-1, ws * ws, 2)
    win_pos = window_partition(coords, ws).reshape(-1, ws * ws, 2)
    same_offset = ((win_orig[:, :, None] - win_orig[:, None, :]) == (win_pos[:, :, None] - win_pos[:, None, :])).all(-1)
    mask = shifted_window_mask(height, width, ws, shift)
    assert mask.shape == (height * width // ws**2, ws * ws, ws * ws)
    assert torch.equal(mask == 0, same_offset)
    assert set(mask.unique().tolist()) <= {0.0, -100.0}


def test_drop_path_drops_whole_samples_and_rescales() -> None:
    drop = DropPath(0.25).train()
    x = torch.ones(4000, 3, 5)
    y = drop(x)
    per_sample = y.view(4000, -1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    assert torch.equal(drop.eval()(x), x)


# ---------------------------------------------------------------- nano07 (embedded default)


@pytest.fixture(scope="module")
def nano() -> PixelFormer:
    torch.manual_seed(0)
    return build_pixelformer("nano07", max_depth=10.0).eval()


def test_nano_is_small(nano: PixelFormer) -> None:
    # Encoder 32/2-2-2-2 (2.28 M), decoder widths 1/8 of upstream: 3.64 M in all.
    assert count_parameters(nano) == 3_639_094
    assert sum(p.numel() for p in nano.backbone.parameters()) == 2_282_926


@pytest.mark.parametrize("size", [(192, 256), (128, 448)])
def test_nano_forward_shapes_range_and_gradients(nano: PixelFormer, size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size, requires_grad=True)
    depth = nano(x)
    assert depth.shape == (2, 1, *size)
    assert torch.isfinite(depth).all()
    assert depth.min() > 0 and depth.max() <= nano.max_depth
    assert depth.std() > 0  # not a constant map
    depth[:, :, size[0] // 2, size[1] // 2].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    # Windowed attention: a centre pixel's gradient reaches the whole image through the global BCP mean.
    assert (x.grad[0].abs().sum(0) > 0).float().mean() > 0.99


def test_backward_reaches_every_used_parameter() -> None:
    # Eval mode: in training, stochastic depth may drop a whole block for a one-image batch.
    model = build_pixelformer("nano07", max_depth=10.0).eval()
    model(torch.randn(1, 3, 128, 448)).mean().backward()
    without_grad = sorted(n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0)
    # The only parameters the forward never touches: upstream's unused 3x3 conv ``proj`` of each SAM.
    assert without_grad == sorted(f"sam{i}.proj.{w}" for i in range(1, 5) for w in ("weight", "bias"))
    # Training mode runs too (batch statistics in the decoder's BatchNorm, stochastic depth).
    model.train()
    depth = model(torch.randn(2, 3, 64, 96))
    assert torch.isfinite(depth).all() and depth.min() > 0 and depth.max() <= 10.0
    assert int(model.decoder.bottleneck.bn.num_batches_tracked) == 1


def test_input_size_must_be_multiple_of_32(nano: PixelFormer) -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        nano(torch.zeros(1, 3, 200, 256))


def test_attention_softmaxes_are_hookable_submodules(nano: PixelFormer) -> None:
    softmaxes = {n: m for n, m in nano.named_modules() if isinstance(m, nn.Softmax)}
    assert len(softmaxes) == 8 + 4 and all(n.endswith("attn.softmax") for n in softmaxes)
    assert all(m.dim == -1 for m in softmaxes.values())
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, inp, out, name=n: seen.__setitem__(name, out))
               for n, m in softmaxes.items()]
    try:
        with torch.no_grad():
            nano(torch.randn(1, 3, 192, 256))
    finally:
        for h in handles:
            h.remove()
    assert set(seen) == set(softmaxes)
    # Stage 1 at 192x256: a 48x64 token map padded to 49x70 -> 7x10 windows of 7x7 tokens, 1 head.
    block = nano.backbone.layers[0].blocks[1]
    assert isinstance(block, SwinBlock) and block.shift_size == 3 and block.window_size == 7
    assert block.input_resolution == (48, 64) and block.padded_resolution == (49, 70)
    probs = seen["backbone.layers.0.blocks.1.attn.softmax"]
    assert probs.shape == (70, 1, 49, 49)
    torch.testing.assert_close(probs.sum(-1), torch.ones(70, 1, 49))
    # sam1 works at 1/4 as well (48x64), 1 head; sam4 at 1/32 (6x8 padded to 7x14), 4 heads.
    sam_block = nano.sam1.sam_block
    assert isinstance(sam_block, SkipAttentionBlock) and sam_block.shift_size == 0
    assert seen["sam1.sam_block.attn.softmax"].shape == (70, 1, 49, 49)
    assert nano.sam4.sam_block.padded_resolution == (7, 14)
    assert seen["sam4.sam_block.attn.softmax"].shape == (2, 4, 49, 49)


def test_checkpoint_round_trip_with_module_prefix(tmp_path: Path) -> None:
    source = build_pixelformer("nano07", max_depth=10.0).eval()
    with torch.no_grad():  # make BN statistics differ from a fresh build
        source.decoder.bottleneck.bn.running_mean.uniform_(-1, 1)
        source.decoder.bottleneck.bn.num_batches_tracked.fill_(7)
    path = tmp_path / "nano.pth"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = build_pixelformer("nano07", max_depth=10.0)
    load_weights(target, path)
    assert not target.training
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


# ---------------------------------------------------------------- parity with the official code (large07)


def seeded_value(name: str, template: torch.Tensor) -> torch.Tensor:
    """The name-seeded initialisation of ../shared/reference/README.md (pixelformer/, "Seeding rule")."""
    if not template.is_floating_point():
        return template.clone()
    generator = torch.Generator().manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    shape = tuple(template.shape)
    if name.endswith("running_var"):
        value = 1 + 0.1 * torch.rand(shape, generator=generator)
    elif template.dim() == 1 and name.endswith("weight"):
        value = 1 + 0.1 * torch.randn(shape, generator=generator)
    else:
        value = 0.02 * torch.randn(shape, generator=generator)
    return value.to(template.dtype)


@pytest.fixture(scope="module")
def seeded_large_nyu(reference_dir: Path) -> PixelFormer:
    model = build_pixelformer("large07", max_depth=10.0)
    # The real build must match the manifest too (buffers computed for real, not on the meta device).
    assert model_manifest(model) == read_manifest(reference_dir / "state_dict_large07.tsv")
    assert count_parameters(model) == PARAMETER_COUNTS["large07"]
    seeded = {name: seeded_value(name, t) for name, t in model.state_dict().items()}
    model.load_state_dict(seeded, strict=True)
    return model.eval()


@pytest.mark.slow
def test_seeded_weights_match_reference_checksums(seeded_large_nyu: PixelFormer, reference_dir: Path) -> None:
    rows = [line.split("\t") for line in (reference_dir / "seeded_checksums_large07.tsv").read_text().splitlines()]
    assert rows[0] == ["name", "rule", "seed", "first", "sum_float64"]
    state = seeded_large_nyu.state_dict()
    assert [r[0] for r in rows[1:]] == list(state)
    for name, rule, _seed, first, total in rows[1:]:
        tensor = state[name]
        assert tensor.reshape(-1)[0].item() == pytest.approx(float(first), rel=1e-7, abs=1e-12), name
        if rule == "int_kept":
            assert int(tensor.sum()) == int(total), name
        else:
            assert tensor.double().sum().item() == pytest.approx(float(total), rel=1e-9, abs=1e-9), name


def run_with_intermediates(model: PixelFormer, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, object]]:
    captured: dict[str, object] = {}
    names = ["backbone", "decoder", "sam4", "sam3", "sam2", "sam1", "bcp"]
    handles = [getattr(model, n).register_forward_hook(lambda mod, inp, out, n=n: captured.__setitem__(n, out))
               for n in names]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, captured


def assert_stats_close(name: str, tensor: torch.Tensor, ref: dict[str, object]) -> None:
    assert list(tensor.shape) == ref["shape"], name
    t = tensor.double()
    ours = {"min": t.min().item(), "mean": t.mean().item(), "max": t.max().item(), "abs_mean": t.abs().mean().item()}
    for stat, value in ours.items():
        assert value == pytest.approx(ref[stat], rel=1e-4, abs=1e-4), f"{name} {stat}: ours {value} vs {ref[stat]}"


@pytest.mark.slow
@pytest.mark.parametrize(("stem", "max_depth"), [("nyu_large07_seeded_00000", 10.0),
                                                  ("kitti_large07_seeded_0000000005", 80.0)])
def test_large07_seeded_forward_matches_official(seeded_large_nyu: PixelFormer, reference_dir: Path, stem: str,
                                                 max_depth: float) -> None:
    if max_depth == seeded_large_nyu.max_depth:
        model = seeded_large_nyu
    else:  # the same seeded tensors in a model built for this depth range (meta build, tensors shared)
        with torch.device("meta"):
            model = build_pixelformer("large07", max_depth=max_depth)
        model.load_state_dict(seeded_large_nyu.state_dict(), strict=True, assign=True)
        model.eval()
    reference = np.load(reference_dir / f"{stem}.npz")
    sidecar = json.loads((reference_dir / f"{stem}.json").read_text())
    assert sidecar["max_depth"] == max_depth and sidecar["min_depth"] == model.min_depth
    output, captured = run_with_intermediates(model, torch.from_numpy(reference["input"]))
    # Localise a mismatch: the first stage whose statistics differ is where to look.
    stats = sidecar["intermediate_stats"]
    features = captured["backbone"]
    assert isinstance(features, tuple) and len(features) == 4
    for i, feature in enumerate(features):
        assert_stats_close(f"backbone[{i}]", feature, stats["backbone"][i])
    for name in ("decoder", "sam4", "sam3", "sam2", "sam1", "bcp"):
        tensor = captured[name]
        assert isinstance(tensor, torch.Tensor)
        assert_stats_close(name, tensor, stats[name])
    bin_centers = captured["bcp"]
    assert isinstance(bin_centers, torch.Tensor)
    np.testing.assert_allclose(bin_centers.numpy(), reference["bin_centers"], rtol=1e-4, atol=1e-4)
    expected = reference["output"]
    assert output.shape == expected.shape
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-4, atol=1e-4)
    print(f"{stem}: max abs error {np.abs(output.numpy() - expected).max():.3g} m")
