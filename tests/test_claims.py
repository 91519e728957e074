"""The paper's claims: every verdict of the fixed decision rule on constructed score tables, and the Markdown."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from depthxai.report.claims import CLAIM_COLUMNS, evaluate_claims, write_claims_markdown

N = 12
MORF, LERF, AF = "morf_auc_depth_rmse", "lerf_auc_depth_rmse", "attribution_fidelity"
METER, PIXELFORMER = "meter_xxs_nyu", "pixelformer_nano07_nyu"


def table(model: str, values: dict[str, dict[str, np.ndarray]], dataset: str = "nyu") -> pd.DataFrame:
    """Tidy scores from ``{metric: {method: (N,) values}}``."""
    rows = [{"dataset": dataset, "model": model, "method": method, "image_id": f"img{i:02d}", "metric": metric,
             "value": float(v)}
            for metric, by_method in values.items() for method, vs in by_method.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def shifted(offsets: dict[str, float], seed: int, noise: float = 0.01) -> dict[str, np.ndarray]:
    """Per-method scores sharing a per-image component, each method shifted by its offset (clear ranking)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=N)
    return {m: base + off + noise * rng.normal(size=N) for m, off in offsets.items()}


def iid(methods: list[str], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=N) for m in methods}


def winner_scores(model: str, winner: str, seed: int = 0) -> pd.DataFrame:
    """``winner`` best on MoRF (highest) and LeRF (lowest); Attribution Fidelity tracks MoRF."""
    others = [m for m in ("saliency", "ig", "rollout") if m != winner]
    up = {winner: 1.0, others[0]: 0.5, others[1]: 0.2, "random": 0.0}
    return table(model, {MORF: shifted(up, seed), LERF: shifted({m: -v for m, v in up.items()}, seed + 1),
                         AF: shifted(up, seed + 2)})


def verdict(claims: pd.DataFrame, claim: str, role: str = "primary", model: str | None = None) -> str:
    rows = claims[(claims["claim"] == claim) & (claims["role"].isin([role, ""]))]
    if model is not None:
        rows = rows[rows["model"] == model]
    assert len(rows) == 1, rows
    return str(rows["verdict"].iloc[0])


# --------------------------------------------------------------------------------------------- claims 1 and 2


def test_supported_and_not_evaluated() -> None:
    claims = evaluate_claims(winner_scores(METER, "saliency"))
    assert list(claims.columns) == CLAIM_COLUMNS
    assert verdict(claims, "1") == "supported"
    assert verdict(claims, "1", "secondary") == "supported"  # LeRF: lower is better, saliency lowest
    row = claims[(claims["claim"] == "2")].iloc[0]
    assert row["verdict"] == "not evaluated" and "pixelformer_" in row["reason"]


def test_claim_2_on_the_deep_model() -> None:
    scores = pd.concat([winner_scores(METER, "ig", seed=3), winner_scores(PIXELFORMER, "ig", seed=4)])
    claims = evaluate_claims(scores)
    assert verdict(claims, "1", model=METER) == "not supported"
    assert "ig" in claims[(claims["claim"] == "1") & (claims["role"] == "primary")]["reason"].iloc[0]
    assert verdict(claims, "2", model=PIXELFORMER) == "supported"
    assert set(claims[claims["claim"] == "2"]["model"]) == {PIXELFORMER}  # METER is not a deep model


def test_inconclusive_when_the_methods_do_not_differ() -> None:
    values = iid(["saliency", "ig", "rollout", "random"], seed=11)
    scores = table(METER, {MORF: values, LERF: values, AF: values})
    matrix = np.stack([values[m] for m in ("ig", "rollout", "saliency")], axis=1)
    p = stats.friedmanchisquare(*matrix.T).pvalue
    assert p >= 0.05  # the constructed data really show no difference
    claims = evaluate_claims(scores)
    row = claims[(claims["claim"] == "1") & (claims["role"] == "primary")].iloc[0]
    assert row["verdict"] == "inconclusive"
    assert row["friedman_p"] == pytest.approx(p)
    assert "Friedman" in row["reason"]


def test_inconclusive_when_the_claimed_method_ties_with_another() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=N)
    morf = {"saliency": base + 1 + 0.3 * rng.normal(size=N), "ig": base + 1 + 0.3 * rng.normal(size=N),
            "rollout": base, "random": base - 1 + 0.01 * rng.normal(size=N)}  # jitter: no tied differences
    claims = evaluate_claims(table(METER, {MORF: morf, LERF: morf, AF: morf}))
    row = claims[(claims["claim"] == "1") & (claims["role"] == "primary")].iloc[0]
    assert row["friedman_p"] < 0.05
    assert row["verdict"] == "inconclusive", row["reason"]


def test_two_methods_use_the_wilcoxon_test_alone() -> None:
    up = {"saliency": 1.0, "ig": 0.0, "random": -1.0}
    claims = evaluate_claims(table(METER, {MORF: shifted(up, 1), LERF: shifted(up, 2), AF: shifted(up, 3)}))
    row = claims[(claims["claim"] == "1") & (claims["role"] == "primary")].iloc[0]
    assert row["verdict"] == "supported" and np.isnan(row["friedman_p"])


# --------------------------------------------------------------------------------------------- claim 3


def _claim3(scores: pd.DataFrame) -> pd.Series:
    rows = evaluate_claims(scores)
    return rows[rows["claim"] == "3"].iloc[0]


def test_claim_3_supported_names_the_failing_method() -> None:
    rng = np.random.default_rng(2)
    morf = shifted({"saliency": 1.0, "ig": 1.0, "random": 0.0}, 5)
    af_random = rng.normal(size=N)
    af = {"random": af_random, "saliency": rng.normal(size=N), "ig": af_random + 2.0}
    row = _claim3(table(METER, {MORF: morf, AF: af}))
    assert row["verdict"] == "supported"
    assert row["method"] == "saliency"
    assert row["best_method"] == "ig"


def test_claim_3_not_supported_when_every_satisfactory_method_passes() -> None:
    morf = shifted({"saliency": 1.0, "ig": 1.0, "random": 0.0}, 6)
    rng = np.random.default_rng(3)
    af_random = rng.normal(size=N)
    wobble = np.array([(-1) ** i * (i + 1) * 1e-3 for i in range(N)])  # balanced +/-: no difference between them
    af = {"random": af_random, "saliency": af_random + 2.0, "ig": af_random + 2.0 + wobble}
    row = _claim3(table(METER, {MORF: morf, AF: af}))
    assert row["verdict"] == "not supported", row["comparisons"]


def test_claim_3_inconclusive_and_not_evaluated() -> None:
    values = iid(["saliency", "ig", "random"], seed=21)
    for m in ("saliency", "ig"):  # the constructed data really show no MoRF difference from random
        assert stats.wilcoxon(values[m] - values["random"]).pvalue >= 0.05
    row = _claim3(table(METER, {MORF: values, AF: values}))
    assert row["verdict"] == "inconclusive"
    without_baseline = table(METER, {MORF: {"saliency": values["saliency"]}, AF: {"saliency": values["saliency"]}})
    row = _claim3(without_baseline)
    assert row["verdict"] == "not evaluated" and "random" in row["reason"]


# --------------------------------------------------------------------------------------------- Markdown


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out independently of depthxai.stats."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_markdown_reports_the_computed_statistics(tmp_path) -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=N)
    morf = {"saliency": base + 0.6 + 0.5 * rng.normal(size=N), "ig": base + 0.2 + 0.5 * rng.normal(size=N),
            "rollout": base + 0.5 * rng.normal(size=N), "random": base - 1}
    scores = table(METER, {MORF: morf, LERF: morf, AF: morf})
    claims = evaluate_claims(scores)
    text = write_claims_markdown(claims, tmp_path / "claims.md")
    assert (tmp_path / "claims.md").read_text() == text

    methods = ["ig", "rollout", "saliency"]
    matrix = np.stack([morf[m] for m in methods], axis=1)
    friedman = stats.friedmanchisquare(*matrix.T)
    pairs = list(itertools.combinations(methods, 2))
    p_holm = dict(zip(pairs, _holm([stats.wilcoxon(morf[a] - morf[b]).pvalue for a, b in pairs])))
    row = claims[(claims["claim"] == "1") & (claims["role"] == "primary")].iloc[0]
    assert row["friedman_p"] == pytest.approx(friedman.pvalue)
    assert row["friedman_statistic"] == pytest.approx(friedman.statistic)
    line = next(line for line in text.splitlines() if line.startswith("| nyu | meter_xxs_nyu | primary |"))
    assert f"| {friedman.statistic:.3g} | {friedman.pvalue:.3g} |" in line
    assert f"vs ig: p_holm={p_holm[('ig', 'saliency')]:.3g}" in line
    assert f"vs rollout: p_holm={p_holm[('rollout', 'saliency')]:.3g}" in line
    assert f"saliency={morf['saliency'].mean():.3g}" in line
    assert f"| {row['verdict']} |" in line
    assert "## Decision rules" in text and "alpha = 0.05" in text


def test_claim_3_strict_variant_ignores_gaps_the_conventional_metric_shows_too() -> None:
    # AF ranks the methods exactly as MoRF does: the lenient rule calls ig and rollout "failing" (below the best AF),
    # the strict rule does not, since MoRF already shows them below saliency.
    row = _claim3(winner_scores(METER, "saliency"))
    assert row["verdict"] == "supported" and row["method"] == "ig;rollout"
    assert row["verdict_strict"] == "not supported" and row["method_strict"] == ""
    # AF and MoRF disagree: equal MoRF, but ig's AF is significantly below saliency's -> supported under both rules
    rng = np.random.default_rng(4)
    base = rng.normal(size=N)
    wobble = np.array([(-1) ** i * (i + 1) * 1e-3 for i in range(N)])
    jitter = 0.01 * rng.normal(size=(4, N))  # no tied differences (ties make scipy's Wilcoxon permute: slow)
    morf = {"saliency": base + 1.0 + jitter[0], "ig": base + 1.0 + jitter[0] + wobble, "random": base}
    af = {"saliency": base + 2.0 + jitter[1], "ig": base + 1.0 + jitter[2], "random": base + jitter[3]}
    row = _claim3(table(METER, {MORF: morf, AF: af}))
    assert row["verdict"] == "supported" and row["verdict_strict"] == "supported"
    assert row["method_strict"] == "ig"
