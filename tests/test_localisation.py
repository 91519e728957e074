"""Localisation ground truth: mosaics, Focus and the confusion metrics, the object-shift control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from depthxai.attribution import TargetSpec, build_method, target_weights
from depthxai.evaluation.fidelity import attribution_fidelity
from depthxai.evaluation.localisation import (
    LOCALISATION_COLUMNS,
    SHIFT_COLUMNS,
    dilate,
    localisation_metrics,
    localisation_run,
    make_mosaics,
    object_shift_run,
    oracle_map,
    region_scores,
    shift_region,
    soft_top_selection,
    tile_box,
    tile_mask,
)
from depthxai.models.registry import ModelCard
from depthxai.models.wrapper import DepthModel


def pointwise_model(size: tuple[int, int]) -> DepthModel:
    """A 1x1-conv depth model: each output pixel depends on its own input pixel only, so the gradient of the mean
    depth over a region is exactly zero outside the region (a localisation ground truth that holds for the model)."""
    card = ModelCard(name="pointwise_t_synthindoor", arch="pointwise", variant="t", dataset="synthindoor",
                     input_size=size, imagenet_norm=False, output_unit_m=1.0, min_depth=1e-3, max_depth=10.0,
                     builder="unused:unused")
    net = nn.Sequential(nn.Conv2d(3, 1, 1), nn.Softplus())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))
        net[0].bias.fill_(0.3)
    return DepthModel(net, card).eval()


# --------------------------------------------------------------------------------------------- mosaics


def test_tiles_partition_the_frame_and_match_box_targets() -> None:
    size = (10, 14)
    masks = torch.stack([tile_mask(k, size) for k in range(4)])
    assert torch.equal(masks.sum(0), torch.ones(size, dtype=torch.long))
    assert tile_box(3, size) == (5, 7, 10, 14)
    for k in range(4):
        top, left, bottom, right = tile_box(k, size)
        spec = TargetSpec(kind="box", box=(top / 10, left / 14, bottom / 10, right / 14))
        weights = target_weights(spec, torch.zeros(1, 1, *size))[0, 0]
        assert torch.equal(weights > 0, masks[k])


def test_make_mosaics_places_downscaled_distinct_scenes() -> None:
    images = torch.rand(6, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    mosaics, tile_ids = make_mosaics(images, 5, seed=3)
    assert mosaics.shape == (5, 3, 8, 12) and tile_ids.shape == (5, 4)
    assert all(len(set(row)) == 4 for row in tile_ids.tolist())  # four different scenes per mosaic
    # a tile is its scene averaged over 2x2 blocks
    halves = images.reshape(6, 3, 4, 2, 6, 2).mean(dim=(3, 5))
    for m in range(5):
        for k in range(4):
            top, left, bottom, right = tile_box(k, (8, 12))
            assert torch.allclose(mosaics[m, :, top:bottom, left:right], halves[tile_ids[m, k]], atol=1e-6)
    again, ids_again = make_mosaics(images, 5, seed=3)
    assert torch.equal(again, mosaics) and np.array_equal(ids_again, tile_ids)
    assert not np.array_equal(make_mosaics(images, 5, seed=4)[1], tile_ids)
    with pytest.raises(ValueError, match="at least 4"):
        make_mosaics(images[:3], 1, seed=0)


# --------------------------------------------------------------------------------------------- metrics


def test_known_answers_of_the_localisation_metrics() -> None:
    size = (8, 12)
    target = tile_mask(1, size)
    perfect = localisation_metrics(target.double(), target)
    for name in ("focus", "precision", "recall", "specificity", "f1", "accuracy", "mass_precision"):
        assert perfect[name] == 1.0, name
    uniform = localisation_metrics(torch.ones(size), target)
    assert uniform["focus"] == 0.25
    # ties are selected fractionally: every pixel holds a quarter of a slot
    assert uniform["precision"] == pytest.approx(0.25) and uniform["recall"] == pytest.approx(0.25)
    assert uniform["specificity"] == pytest.approx(0.75) and uniform["accuracy"] == pytest.approx(0.625)
    wrong = localisation_metrics(tile_mask(2, size).double(), target)
    assert wrong["focus"] == 0.0 and wrong["precision"] == 0.0 and wrong["recall"] == 0.0
    assert wrong["specificity"] == pytest.approx(16 / 24) and wrong["accuracy"] == pytest.approx(0.5)
    # signed maps: magnitude for Focus, so a negative copy of the tile still localises perfectly
    assert localisation_metrics(-target.double(), target)["focus"] == 1.0


def test_metrics_match_direct_computation_on_a_random_signed_map() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(size=(10, 16))
    mask = np.zeros((10, 16), bool)
    mask[5:, 8:] = True
    got = localisation_metrics(torch.from_numpy(r), torch.from_numpy(mask))
    assert got["focus"] == pytest.approx(np.abs(r)[mask].sum() / np.abs(r).sum())
    top = np.argsort(-np.abs(r).ravel())[: mask.sum()]  # no ties in continuous data
    selected = np.zeros(r.size, bool)
    selected[top] = True
    selected = selected.reshape(r.shape)
    tp, fp = (selected & mask).sum(), (selected & ~mask).sum()
    fn, tn = (~selected & mask).sum(), (~selected & ~mask).sum()
    assert got["precision"] == pytest.approx(tp / (tp + fp))
    assert got["recall"] == pytest.approx(tp / (tp + fn))
    assert got["specificity"] == pytest.approx(tn / (tn + fp))
    assert got["accuracy"] == pytest.approx((tp + tn) / r.size)
    # Fresz et al.'s relevance-mass confusion matrix (evaluation/compute_metrics.py)
    m_tp, m_fn = r[mask & (r > 0)].sum(), -r[mask & (r < 0)].sum()
    m_fp, m_tn = r[~mask & (r > 0)].sum(), -r[~mask & (r < 0)].sum()
    precision, sensitivity = m_tp / (m_tp + m_fp), m_tp / (m_tp + m_fn)
    assert got["mass_precision"] == pytest.approx(precision)
    assert got["mass_sensitivity"] == pytest.approx(sensitivity)
    assert got["mass_specificity"] == pytest.approx(m_tn / (m_tn + m_fp))
    assert got["mass_accuracy"] == pytest.approx((m_tp + m_tn) / (m_tp + m_tn + m_fp + m_fn))
    assert got["mass_f1"] == pytest.approx(2 * precision * sensitivity / (precision + sensitivity))
    # another selected share: precision and recall part
    half = localisation_metrics(torch.from_numpy(r), torch.from_numpy(mask), top_share=0.5)
    top = np.argsort(-np.abs(r).ravel())[: r.size // 2]
    inside = mask.ravel()[top].sum()
    assert half["precision"] == pytest.approx(inside / (r.size // 2))
    assert half["recall"] == pytest.approx(inside / mask.sum())


def test_soft_top_selection_shares_ties() -> None:
    score = torch.tensor([3.0, 1.0, 1.0, 1.0, 0.0])
    assert soft_top_selection(score, 2).tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert soft_top_selection(score, 1).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert float(soft_top_selection(torch.rand(7, 5), 11).sum()) == pytest.approx(11)


def test_localisation_run_on_a_model_with_known_localisation() -> None:
    size = (16, 24)
    model = pointwise_model(size)
    images = torch.rand(5, 3, *size, generator=torch.Generator().manual_seed(1))
    methods = [build_method("saliency"), build_method("random")]
    table = localisation_run(model, images, methods, n_mosaics=8, seed=2, image_ids=[f"s{i}" for i in range(5)])
    assert list(table.columns) == LOCALISATION_COLUMNS
    assert len(table) == 3 * 8 * 12  # (saliency, random, oracle) x mosaics x (11 localisation metrics + AF)
    fidelity = table[table["metric"] == "attribution_fidelity"].set_index(["method", "image_id"])["value"]
    # the oracle's map is the prediction: AF 1 by construction, while it localises nothing in particular
    np.testing.assert_allclose(fidelity.loc["oracle"].to_numpy(), 1.0, rtol=0, atol=1e-12)
    mosaics, _ = make_mosaics(images, 8, seed=2)
    depth = model.native(mosaics)[:, 0].detach()
    for m in range(8):  # AF of each map against its mosaic's prediction, computed here
        saliency_map = build_method("saliency").attribute(model, mosaics[m : m + 1], target_weights(
            TargetSpec(kind="box", box=_box_fraction(m % 4, size)), torch.zeros(1, 1, *size))).maps.sum(dim=1)[0]
        assert fidelity.loc[("saliency", f"mosaic_{m:04d}")] == pytest.approx(
            attribution_fidelity(saliency_map, depth[m]), rel=1e-9, nan_ok=True)
    oracle_focus = table[(table["method"] == "oracle") & (table["metric"] == "focus")]["value"].to_numpy()
    tile_share = [float(depth[m].double()[tile_mask(m % 4, size)].sum() / depth[m].double().sum()) for m in range(8)]
    np.testing.assert_allclose(oracle_focus, tile_share, rtol=1e-9)  # the depth's own share of the tile
    focus = table[table["metric"] == "focus"].set_index(["method", "image_id"])["value"]
    # the model is pointwise: the gradient of the tile's mean depth is zero outside the tile
    precision = table[(table["method"] == "saliency") & (table["metric"] == "precision")]["value"]
    assert len(focus.loc["saliency"]) == len(precision) == 8  # one per mosaic
    assert (focus.loc["saliency"] == 1.0).all()
    assert (precision == 1.0).all()
    # uniform random relevance: about a quarter of the mass on the tile
    assert abs(float(focus.loc["random"].mean()) - 0.25) < 0.03
    tiles = table.drop_duplicates("image_id").set_index("image_id")["target_tile"]
    assert tiles.tolist() == [m % 4 for m in range(8)]
    _, tile_ids = make_mosaics(images, 8, seed=2)
    sources = table.drop_duplicates("image_id")["source_id"].tolist()
    assert sources == [f"s{tile_ids[m, m % 4]}" for m in range(8)]


# --------------------------------------------------------------------------------------------- object shift


def test_shift_region_and_region_scores() -> None:
    a = np.zeros((9, 9), bool)
    a[4, 4] = True
    b = np.zeros((9, 9), bool)
    b[4, 6] = True
    region = shift_region(a, b, dilate_px=1)
    expected = np.zeros((9, 9), bool)
    expected[3:6, 3:8] = True
    assert np.array_equal(region.numpy(), expected)
    assert torch.equal(dilate(torch.from_numpy(a), 0), torch.from_numpy(a))
    scores = region_scores(region.double(), region)
    assert scores["mass_share"] == 1.0 and scores["rank_precision"] == 1.0
    assert scores["area_share"] == pytest.approx(15 / 81)
    assert scores["mass_ratio"] == pytest.approx(81 / 15)
    assert region_scores(torch.ones(9, 9), region)["mass_ratio"] == pytest.approx(1.0)


def _box_fraction(tile: int, size: tuple[int, int]) -> tuple[float, float, float, float]:
    top, left, bottom, right = tile_box(tile, size)
    return top / size[0], left / size[1], bottom / size[0], right / size[1]


def test_oracle_map_pools_back_to_the_prediction() -> None:
    native = torch.rand(6, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 1.0
    blocks = oracle_map(native, (24, 32))  # integer factors: copied blocks
    assert blocks.shape == (24, 32) and torch.equal(blocks[8:12, 12:16], native[2, 3].expand(4, 4))
    assert attribution_fidelity(blocks, native) == pytest.approx(1.0, abs=1e-12)
    assert oracle_map(native, (25, 30)).shape == (25, 30)  # otherwise bilinear


def test_object_shift_run_plumbing() -> None:
    size = (96, 128)
    model = pointwise_model(size)
    table = object_shift_run(model, [build_method("saliency"), build_method("random")], ["indoor"], n_pairs=1, seed=0)
    assert list(table.columns) == SHIFT_COLUMNS
    values = table.set_index(["method", "metric"])["value"]
    # pointwise model: the target (mean depth over the object in B) depends only on the object's pixels in B
    assert values[("saliency", "mass_share")] == 1.0
    assert values[("saliency", "mass_ratio")] == pytest.approx(1.0 / values[("saliency", "area_share")])
    assert 0.5 < values[("random", "mass_ratio")] < 1.5
    assert values[("oracle", "attribution_fidelity")] == pytest.approx(1.0, abs=1e-12)
    assert set(table["method"]) == {"saliency", "random", "oracle"}
    row = table.iloc[0]
    assert row["true_shift_m"] > 0  # the object moved away from the camera
