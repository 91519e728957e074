"""The paper's claims: the decision rules on constructed score tables with known answers, the family-wise Holm
correction against an independent computation, the error rate of claim 3 under identical true effects (simulated)
and its power when Attribution Fidelity truly fails, and the Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from depthxai.report.claims import CLAIM_COLUMNS, ClaimRules, evaluate_claims, write_claims_markdown
from depthxai.stats.hypothesis import holm_adjust

GAP, AF = "gap_auc_target_change", "attribution_fidelity"
METER, PIXELFORMER = "meter_xxs", "pixelformer_nano07"
PAPER = ("saliency", "ig", "rollout")


def table(values: dict[str, dict[str, np.ndarray]], model: str, dataset: str = "synthindoor") -> pd.DataFrame:
    """Tidy scores from ``{metric: {method: (N,) values}}``."""
    rows = [(dataset, model, method, f"img{i:02d}", metric, float(v))
            for metric, by_method in values.items() for method, vs in by_method.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


def shifted(offsets: dict[str, float], rng: np.random.Generator, n: int = 16, noise: float = 0.05) -> dict:
    """Per-method scores sharing a per-image component, each method shifted by its offset."""
    base = rng.normal(size=n)
    return {m: base + off + noise * rng.normal(size=n) for m, off in offsets.items()}


def verdict(claims: pd.DataFrame, claim: str, model: str | None = None, dataset: str | None = None,
            role: str = "primary") -> str:
    rows = claims[(claims["claim"] == claim) & (claims["role"] == role)]
    if model is None:
        rows = rows[rows["scope"] == "all"]
    else:
        rows = rows[(rows["model"] == model) & (rows["scope"] == "pair")]
        if dataset is not None:
            rows = rows[rows["dataset"] == dataset]
    assert len(rows) == 1, rows
    return str(rows["verdict"].iloc[0])


def study(winner_light: str, winner_deep: str, seed: int = 0, datasets=("synthindoor", "synthroad")) -> pd.DataFrame:
    """Both models on both datasets; the winner of each model has the largest gap; AF tracks the gap; the learned
    explainer beats everything (it must not matter: it is not a paper method)."""
    rng = np.random.default_rng(seed)
    frames = []
    for dataset in datasets:
        for model, winner in ((METER, winner_light), (PIXELFORMER, winner_deep)):
            others = [m for m in PAPER if m != winner]
            gaps = {winner: 1.0, others[0]: 0.5, others[1]: 0.2, "explainer": 3.0, "random_smooth": 0.0}
            frames.append(table({GAP: shifted(gaps, rng), AF: shifted({m: 0.1 * g for m, g in gaps.items()}, rng)},
                                model, dataset))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------- claims 1 and 2


def test_claims_1_and_2_on_the_paper_methods_only() -> None:
    claims = evaluate_claims(study("saliency", "rollout"))
    assert list(claims.columns) == CLAIM_COLUMNS
    for dataset in ("synthindoor", "synthroad"):
        assert verdict(claims, "1", METER, dataset) == "supported"
        assert verdict(claims, "2", PIXELFORMER, dataset) == "not supported"  # rollout beats ig
    assert verdict(claims, "1") == "supported" and verdict(claims, "2") == "not supported"
    # the explainer is better than every paper method, yet never compared
    assert not claims["comparisons"].str.contains("explainer").any()
    reason = claims[(claims["claim"] == "2") & (claims["scope"] == "pair")]["reason"].iloc[0]
    assert reason == "rollout, saliency significantly better than ig"
    assert set(claims[claims["claim"] == "1"]["model"]) == {METER, ""}  # PixelFormer is not the light model


def test_holm_spans_every_pair_of_the_claim() -> None:
    """The adjusted p-values of claim 1 equal Holm's over all Wilcoxon p-values of both (dataset, model) pairs,
    computed here with scipy."""
    scores = study("saliency", "ig", seed=4)
    claims = evaluate_claims(scores)
    raw, labels = [], []
    for dataset in ("synthindoor", "synthroad"):
        frame = scores[(scores["dataset"] == dataset) & (scores["model"] == METER) & (scores["metric"] == GAP)]
        wide = frame.pivot(index="image_id", columns="method", values="value")
        for a, b in (("ig", "rollout"), ("ig", "saliency"), ("rollout", "saliency")):
            raw.append(stats.wilcoxon(wide[a] - wide[b]).pvalue)
            labels.append((dataset, a, b))
    adjusted = dict(zip(labels, holm_adjust(np.asarray(raw))))
    row = claims[(claims["claim"] == "1") & (claims["dataset"] == "synthroad") & (claims["scope"] == "pair")
                 & (claims["role"] == "primary")].iloc[0]
    shown = dict(part.split(": ", 1) for part in row["comparisons"].split("; ") if part.startswith("vs "))
    p_vs_ig = float(shown["vs ig"].split(",")[0].split("=")[1])
    assert p_vs_ig == pytest.approx(adjusted[("synthroad", "ig", "saliency")], rel=1e-2)  # 3 significant digits
    friedman = [stats.friedmanchisquare(*scores[(scores["dataset"] == d) & (scores["model"] == METER)
                                                & (scores["metric"] == GAP) & scores["method"].isin(PAPER)]
                                        .pivot(index="image_id", columns="method", values="value").to_numpy().T).pvalue
                for d in ("synthindoor", "synthroad")]
    assert row["friedman_p_holm"] == pytest.approx(holm_adjust(np.asarray(friedman))[1], rel=1e-9)


def test_inconclusive_when_the_methods_do_not_differ() -> None:
    rng = np.random.default_rng(11)
    values = {m: rng.normal(size=16) for m in (*PAPER, "random_smooth")}
    claims = evaluate_claims(table({GAP: values, AF: values}, METER))
    assert verdict(claims, "1", METER) == "inconclusive"
    assert "Friedman" in claims[(claims["claim"] == "1") & (claims["scope"] == "pair")]["reason"].iloc[0]
    assert verdict(claims, "2") == "not evaluated"


def test_other_removal_schemes_are_reported_with_the_same_rule() -> None:
    scores = study("saliency", "ig", seed=2, datasets=("synthindoor",))
    road = scores[scores["metric"] == GAP].copy()
    road["metric"] = GAP + "@road"
    road.loc[road["method"] == "rollout", "value"] += 5.0  # under ROAD, rollout wins
    claims = evaluate_claims(pd.concat([scores, road]))
    assert verdict(claims, "1", METER) == "supported"
    assert verdict(claims, "1", METER, role="scheme:road") == "not supported"
    assert set(claims["role"]) == {"primary", "scheme:road"}


# --------------------------------------------------------------------------------------------- claim 3


def simulate(rng: np.random.Generator, d_conv: tuple[float, ...], d_af: tuple[float, ...], n: int = 32,
             sd_af: float = 0.3) -> pd.DataFrame:
    """One (dataset, model): the paper's methods and the baseline; each method's true effect over the baseline in
    standard deviations of the paired differences, on the conventional gap (sd 1) and on AF (sd ``sd_af``)."""
    base_conv, base_af = rng.normal(size=n), 0.2 * rng.normal(size=n)
    values: dict[str, dict[str, np.ndarray]] = {GAP: {}, AF: {}}
    spread = 1 / np.sqrt(2)  # two independent draws per paired difference
    values[GAP]["random_smooth"] = base_conv + spread * rng.normal(size=n)
    values[AF]["random_smooth"] = base_af + sd_af * spread * rng.normal(size=n)
    for method, dc, da in zip(PAPER, d_conv, d_af):
        values[GAP][method] = base_conv + dc + spread * rng.normal(size=n)
        values[AF][method] = base_af + da * sd_af + sd_af * spread * rng.normal(size=n)
    return table(values, METER)


def claim_3(scores: pd.DataFrame) -> str:
    return verdict(evaluate_claims(scores), "3")


def test_claim_3_keeps_its_error_rate_under_identical_effects() -> None:
    """Both metrics show the same true effect (d = 0.5 for every method, as in the issue's simulation; the AF
    advantage 0.15 is above the margin 0.1): AF exposes nothing, and claim 3 must come out supported in at most 5%
    of 200 runs (the old rule: 39%)."""
    rng = np.random.default_rng(0)
    supported = sum(claim_3(simulate(rng, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))) == "supported" for _ in range(200))
    assert supported / 200 <= 0.05


def test_claim_3_detected_when_attribution_fidelity_truly_fails() -> None:
    """IG passes the conventional metric (d = 1) while its AF equals the baseline's: detected in most runs."""
    rng = np.random.default_rng(1)
    verdicts = [evaluate_claims(simulate(rng, (1.0, 1.0, 1.0), (0.8, 0.0, 0.8), n=64, sd_af=0.2)) for _ in range(40)]
    detected = [verdict(c, "3") == "supported" and "ig" in c[(c["claim"] == "3") & (c["scope"] == "all")
                                                            & (c["role"] == "primary")]["method"].iloc[0]
                for c in verdicts]
    assert np.mean(detected) >= 0.8


def test_claim_3_disagreement_test_ignores_a_method_worse_on_both_metrics() -> None:
    """Rollout is worse than saliency by the same standardised amount on both metrics, and all three beat the
    baseline on AF by far more than the margin: no disagreement, not supported."""
    rng = np.random.default_rng(3)
    scores = simulate(rng, (2.0, 2.0, 1.0), (2.0, 2.0, 1.0), n=32)
    claims = evaluate_claims(scores)
    assert verdict(claims, "3", METER) == "not supported"
    assert "no disagreement" not in claims.iloc[0]["reason"]  # the reason names the passing methods instead
    row = claims[(claims["claim"] == "3") & (claims["scope"] == "pair")].iloc[0]
    assert "pass gap_auc_target_change" in row["reason"]


def test_claim_3_inconclusive_and_not_evaluated() -> None:
    rng = np.random.default_rng(5)
    assert claim_3(simulate(rng, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), n=12)) == "inconclusive"
    scores = simulate(rng, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    claims = evaluate_claims(scores[scores["method"] != "random_smooth"])
    assert verdict(claims, "3", METER) == "not evaluated"
    assert "random_smooth" in claims[(claims["claim"] == "3") & (claims["scope"] == "pair")]["reason"].iloc[0]
    other = evaluate_claims(scores, ClaimRules(baseline="random"))
    assert verdict(other, "3") == "not evaluated"


def test_rules_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ClaimRules(alpha=1.5)
    with pytest.raises(ValueError, match="af_margin"):
        ClaimRules(af_margin=0.0)
    with pytest.raises(ValueError, match="higher-is-better"):
        evaluate_claims(study("saliency", "ig"), ClaimRules(metric="lerf_auc_target_change"))


def test_markdown_states_the_rules_and_the_numbers(tmp_path) -> None:
    claims = evaluate_claims(study("saliency", "ig", seed=7))
    rules = ClaimRules(af_margin=0.07)
    text = write_claims_markdown(claims, tmp_path / "claims.md", rules)
    assert (tmp_path / "claims.md").read_text() == text
    assert "## Decision rules" in text and "0.07 (non-superiority" in text and "(saliency, ig, rollout)" in text
    assert "## Claim 1:" in text and "**Verdict: supported**" in text
    row = claims[(claims["claim"] == "1") & (claims["scope"] == "pair")].iloc[0]
    assert f"{row['claimed_mean']:.3g}" in text
    assert text.count("| ") > 20 and "Tests behind claim 3:" in text
