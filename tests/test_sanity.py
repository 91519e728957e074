"""Model-parameter randomisation (Adebayo et al. 2018): layer order, re-initialisation, SSIM, known answers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from depthxai.attribution import AttributionMethod, AttributionResult, TargetSpec, build_method, target_weights
from depthxai.evaluation.sanity import (
    METER_CASCADE,
    SANITY_COLUMNS,
    LayerGroup,
    cascading_randomisation,
    group_by_prefix,
    layer_groups,
    reinitialise,
    spearman_abs,
    ssim,
    trace_call_order,
)
from depthxai.models import build_model, get_card
from depthxai.models.wrapper import DepthModel

#: the stand-in network: stem -> body (conv, ReLU, conv) -> head, with ReLUs between and softplus after; the forward
#: order of the modules with parameters is stem, body.0, body.2, head (PyTorch's initialisation under seed 1)
TINY = {"input_size": (24, 24), "width": 8, "body": 2, "stride": 1, "seed": 1}
TinyModel = Callable[..., DepthModel]


# --------------------------------------------------------------------------------------------- similarity measures


def _ssim_by_windows(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM computed window by window with centred moments (independent of the convolution formulation)."""
    r = size // 2
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_constant_images_closed_form() -> None:
    # Constant images: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) exactly (the structure term is C2/C2).
    for a, b in ((0.2, 0.7), (0.0, 1.0), (0.5, 0.5)):
        expected = (2 * a * b + 0.01**2) / (a * a + b * b + 0.01**2)
        x, y = torch.full((20, 30), a, dtype=torch.float64), torch.full((20, 30), b, dtype=torch.float64)
        assert ssim(x, y) == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_window_by_window_definition() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((19, 23))
    y = np.clip(0.6 * x + 0.4 * rng.random((19, 23)), 0, 1)
    assert ssim(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(_ssim_by_windows(x, y), rel=1e-10)
    assert ssim(torch.from_numpy(x), torch.from_numpy(x)) == 1.0  # exactly
    # independent noise images are structurally unrelated
    assert abs(ssim(torch.from_numpy(x), torch.from_numpy(rng.random((19, 23))))) < 0.1


def test_spearman_abs_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 9)), rng.normal(size=(12, 9))
    b[:3] = a[:3]  # some shared structure
    expected = stats.spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic
    assert spearman_abs(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, abs=1e-12)
    assert spearman_abs(torch.from_numpy(a), torch.from_numpy(-a)) == 1.0  # |.| makes sign flips irrelevant
    assert math.isnan(spearman_abs(torch.ones(4, 4), torch.from_numpy(a[:4, :4])))


# --------------------------------------------------------------------------------------------- layer order


def test_tiny_cascade_order_and_grouping(tiny_model: TinyModel) -> None:
    model = tiny_model(**TINY)
    order = trace_call_order(model.net, torch.rand(1, 3, 24, 24))
    assert order == ["stem", "body.0", "body.2", "head"]
    assert [g.name for g in layer_groups(model)] == ["head", "body", "stem"]
    assert layer_groups(model)[1].modules == ("body.0", "body.2")
    assert [g.name for g in group_by_prefix(order, 2)] == ["stem", "body.0", "body.2", "head"]
    # the longest matching prefix decides the depth
    grouped = group_by_prefix(["a.b.c.d", "a.x.y", "e.f"], 1, {"a": 2, "a.b": 3})
    assert [g.name for g in grouped] == ["a.b.c", "a.x", "e"]


def test_meter_cascade_is_the_reverse_forward_order() -> None:
    model = DepthModel(build_model("meter_xxs_nyu"), get_card("meter_xxs_nyu")).eval()
    groups = layer_groups(model)
    assert [g.name for g in groups] == list(METER_CASCADE)
    # independent check: the traced call order, grouped per decoder block / encoder stage, reversed
    traced = group_by_prefix(trace_call_order(model.net, torch.rand(1, 3, 192, 256)), 2,
                             {"encoder.mv2": 3, "encoder.mvit": 3})
    assert [g.name for g in traced][::-1] == list(METER_CASCADE)
    # every parameter belongs to exactly one step
    covered = [n for g in groups for n in g.modules]
    owners = [n for n, m in model.net.named_modules() if n and next(m.parameters(recurse=False), None) is not None]
    assert sorted(covered) == sorted(owners)


def test_pixelformer_cascade_from_the_traced_call_order() -> None:
    name = "pixelformer_nano07_synthindoor"
    model = DepthModel(build_model(name), get_card(name)).eval()
    groups = layer_groups(model)
    names = [g.name for g in groups]
    # the backbone splits into patch embedding, stages and norms; heads and skip-attention modules stay whole
    assert names[-1] == "backbone.patch_embed"
    assert names.index("backbone.layers.3") < names.index("backbone.layers.2") < names.index("backbone.layers.0")
    assert names.index("sam1") < names.index("sam4") < names.index("backbone.layers.3")  # decoder side first
    assert {"decoder", "bcp", "disp_head1"} <= set(names)
    # every module the forward pass calls is randomised exactly once; modules it never calls are left out
    called = trace_call_order(model.net, torch.rand(1, 3, 192, 256))
    covered = [n for g in groups for n in g.modules]
    assert sorted(covered) == sorted(called) and len(set(covered)) == len(covered)


# --------------------------------------------------------------------------------------------- re-initialisation


class WithRawParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.linspace(-1.0, 1.0, 400))
        self.linear = nn.Linear(4, 4)


def test_reinitialise_is_seeded_local_and_leaves_the_global_rng() -> None:
    net = WithRawParameter()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    group = LayerGroup("all", ("", "linear"))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    reinitialise(net, LayerGroup("only_linear", ("linear",)), seed=5)
    assert torch.equal(torch.rand(3), expected_next)  # global stream untouched
    assert torch.equal(net.table, before["table"])  # not in the group
    assert not torch.equal(net.linear.weight, before["linear.weight"])
    first = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(before)
    reinitialise(net, LayerGroup("only_linear", ("linear",)), seed=5)
    assert all(torch.equal(first[k], v) for k, v in net.state_dict().items())  # same seed, same draw
    # a module without reset_parameters: redrawn from N(0, its own std)
    net.load_state_dict(before)
    reinitialise(net, group, seed=6)
    assert not torch.equal(net.table, before["table"])
    assert float(net.table.detach().std()) == pytest.approx(float(before["table"].std()), rel=0.15)
    assert abs(float(net.table.detach().mean())) < 0.15


# --------------------------------------------------------------------------------------------- the test


def test_cascading_randomisation_known_answers(tiny_model: TinyModel) -> None:
    model = tiny_model(**TINY)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        weights = target_weights(TargetSpec(kind="near"), model(images))
    methods = [build_method("saliency"), build_method("random")]
    table = cascading_randomisation(model, images, weights, methods, seed=7, image_ids=["a", "b", "c"])

    assert list(table.columns) == SANITY_COLUMNS
    assert len(table) == 4 * 2 * 3 * 3  # (3 groups + step 0) x methods x images x metrics
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())  # caller's model untouched
    assert table.equals(cascading_randomisation(model, images, weights, methods, seed=7, image_ids=["a", "b", "c"]))

    value = table.set_index(["step", "method", "image_id", "metric"])["value"]
    assert list(table.drop_duplicates("step")["layer"]) == ["none", "head", "body", "stem"]
    for method in ("saliency", "random"):
        assert (value.loc[(0, method, slice(None), "spearman")] == 1.0).all()
        assert (value.loc[(0, method, slice(None), "ssim")] == 1.0).all()
    # the random baseline ignores the model: identical maps at every step
    random_rows = table[(table["method"] == "random") & table["metric"].isin(["spearman", "ssim"])]
    assert len(random_rows) == 4 * 3 * 2  # steps x images x metrics
    assert (random_rows["value"] == 1.0).all()
    # saliency maps change once the model is randomised
    assert (value.loc[(3, "saliency", slice(None), "spearman")] < 0.9).all()
    assert (value.loc[(3, "saliency", slice(None), "ssim")] < 0.9).all()
    # Attribution Fidelity is recomputed against each step's own prediction and reacts
    af0 = value.loc[(0, "saliency", slice(None), "attribution_fidelity")].to_numpy()
    af3 = value.loc[(3, "saliency", slice(None), "attribution_fidelity")].to_numpy()
    assert np.all(np.isfinite(af0)) and not np.allclose(af0, af3)


class _PredictionMap(AttributionMethod):
    """A stand-in for a trained explainer: its maps come from the model it was 'trained' against, whatever model
    it is later called with (as a learned explainer's do)."""

    name = "explainer"

    def __init__(self, trained_against: DepthModel) -> None:
        self.trained_against = trained_against

    def attribute(self, model, images, weights, seeds=None) -> AttributionResult:  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return AttributionResult(maps=self.trained_against(images))


def test_the_explainer_is_retrained_once_against_the_fully_randomised_model(tiny_model: TinyModel) -> None:
    model = tiny_model(**TINY)
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        weights = target_weights(TargetSpec(), model(images))
    trained_on: list[dict[str, torch.Tensor]] = []

    def retrain(randomised: DepthModel) -> AttributionMethod:
        trained_on.append({k: v.clone() for k, v in randomised.net.state_dict().items()})
        return _PredictionMap(randomised)

    table = cascading_randomisation(model, images, weights, [build_method("saliency")], seed=7, image_ids=["a", "b"],
                                    retrain_explainer=(_PredictionMap(model), retrain))
    explainer = table[table["method"] == "explainer"]
    assert sorted(explainer["step"].unique()) == [0, 3]  # the intact model and the fully randomised one only
    assert len(trained_on) == 1
    original = model.net.state_dict()
    assert all(not torch.equal(original[k], v) for k, v in trained_on[0].items() if v.is_floating_point())
    value = explainer.set_index(["step", "image_id", "metric"])["value"]
    assert len(value.loc[(0, slice(None), "spearman")]) == len(value.loc[(3, slice(None), "spearman")]) == 2
    assert (value.loc[(0, slice(None), "spearman")] == 1.0).all()
    assert (value.loc[(3, slice(None), "spearman")] < 0.99).all()  # the retrained explainer's maps changed
    saliency = table[table["method"] == "saliency"]
    assert sorted(saliency["step"].unique()) == [0, 1, 2, 3]


def test_step_scores_match_an_independent_recomputation(tiny_model: TinyModel) -> None:
    """The step-1 row equals saliency of a copy whose head was re-initialised with the documented seed."""
    from depthxai.attribution.base import image_seed, reduce_channels
    from depthxai.evaluation.sanity import normalised_magnitude

    model = tiny_model(**TINY)
    images = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    weights = target_weights(TargetSpec(), torch.ones(1, 1, 24, 24))
    saliency = build_method("saliency")
    table = cascading_randomisation(model, images, weights, saliency, seed=11)
    reference = reduce_channels(saliency.attribute(model, images, weights).maps)[0]
    randomised = tiny_model(**TINY)
    randomised.load_state_dict(model.state_dict())
    reinitialise(randomised.net, LayerGroup("head", ("head",)), image_seed(11, "head", "randomisation"))
    step1 = reduce_channels(saliency.attribute(randomised, images, weights).maps)[0]
    value = table.set_index(["step", "metric"])["value"]
    expected = stats.spearmanr(reference.abs().ravel(), step1.abs().ravel()).statistic
    assert value[(1, "spearman")] == pytest.approx(expected, abs=1e-12)
    assert value[(1, "ssim")] == pytest.approx(
        _ssim_by_windows(normalised_magnitude(reference).numpy(), normalised_magnitude(step1).numpy()), rel=1e-9)
