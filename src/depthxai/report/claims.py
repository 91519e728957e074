"""The paper's claims, decided on the per-image scores by rules fixed in advance (``results/claims.md``).

Cirillo et al. (IJCNN 2025) claim:

1. Saliency gives the best maps for the lightweight model (METER);
2. Integrated Gradients gives the best maps for the deep model (PixelFormer);
3. Attribution Fidelity exposes a method that fails even where the conventional metrics look satisfactory.

The rules (:class:`ClaimRules`; the same text is written into the Markdown):

**What is compared.** Only the paper's methods (``methods``: Saliency, IG, Rollout); our learned explainer and the
baselines are not part of the paper's claims. The conventional metric is the MoRF - LeRF gap of the change of the
*explained* scalar (``metric``: ``gap_auc_target_change``, the primary removal scheme), so that a method is judged
on the quantity it explains and on both ends of its ranking. The reference is the smoothness-matched random
baseline (``baseline``: ``random_smooth``), which removes pixels in random order with the methods' spatial
smoothness. The same rule is reported on the gap under every other removal scheme (role ``scheme:<name>``), so a
reader sees whether a verdict survives e.g. ROAD's imputation.

**Claims 1 and 2** ("X gives the best maps"), over the family of (dataset, model) pairs of the claim's model
(every dataset it ran on). Per pair: Friedman test across the methods on the images scored by all of them, and
two-sided Wilcoxon signed-rank tests of every pair of methods. Holm's correction runs *across the family*: over
the Friedman p-values of all pairs of the claim, and over all its Wilcoxon p-values. Per (dataset, model): adjusted
Friedman p >= alpha -> *inconclusive*; another method significantly better than X (adjusted p < alpha, rank-biserial
effect in its favour) -> *not supported*; X has the best mean and is significantly better than every other method ->
*supported*; otherwise *inconclusive*. The claim as a whole (row ``scope = all``): supported where every pair is,
not supported where any pair is, otherwise inconclusive.

**Claim 3**, over all (dataset, model) pairs. A method M *passes the conventional metric* when its gap is
significantly above the baseline's (one-sided Wilcoxon signed-rank, Holm over all methods and pairs). M *fails
Attribution Fidelity* when either is shown:

* its AF is no better than the baseline's: the non-superiority test H0: mean(AF_M - AF_baseline) >= margin
  (``af_margin``; the upper one-sided test of TOST, one-sided Wilcoxon on the differences minus the margin), which
  rejects when M's AF is within the margin of random or below it (TOST's two-sided equivalence p is reported too);
* AF ranks M below another method M' by more than the conventional metric does, a direct test of disagreement:
  with the per-image differences M - M' of each metric divided by their standard deviation, H0: mean(dAF / s_AF -
  dconv / s_conv) >= 0 (one-sided Wilcoxon). Identical true effects on both metrics give no disagreement whatever
  their size, so a method that is simply worse on both metrics does not count.

All AF tests of the claim form one Holm family. Per (dataset, model): some M passes the conventional metric and
fails AF -> *supported* (the methods are named); some M passes and none fails -> *not supported* (no disagreement
shown); no M passes -> *inconclusive*. The claim as a whole: supported where any pair is (the Holm family spans
them all, so this keeps the error rate at alpha), else not supported where any pair is, else inconclusive. An absent
method, baseline or metric gives *not evaluated* with the reason. With fewer than 6 images a two-sided Wilcoxon test
cannot reach p < 0.05: small runs come out inconclusive, which is the rule working.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from depthxai.fileio import write_text
from depthxai.stats.hypothesis import complete_blocks, holm_adjust, rank_biserial
from depthxai.stats.run import metric_direction
from depthxai.tidy import numeric_scores

VERDICTS = ("supported", "not supported", "inconclusive", "not evaluated")

CLAIM_STATEMENTS = {
    "1": "Saliency gives the best maps for the lightweight model (METER).",
    "2": "Integrated Gradients gives the best maps for the deep model (PixelFormer).",
    "3": "Attribution Fidelity exposes a method that fails even where the conventional metrics look satisfactory.",
}

CLAIM_COLUMNS = ["claim", "scope", "dataset", "model", "metric", "role", "method", "verdict", "n_images",
                 "friedman_p_holm", "best_method", "claimed_mean", "means", "comparisons", "reason", "alpha"]


@dataclass(frozen=True)
class ClaimRules:
    """The settings of the decision rules (config section ``claims`` and ``stats.alpha``).

    Attributes:
        methods: the compared methods (the paper's).
        metric: the conventional metric (claims 1-3), higher = better.
        baseline: the reference method of claim 3.
        fidelity_metric: Attribution Fidelity, higher = better.
        af_margin: the smallest AF advantage over the baseline that counts (AF units: a Pearson correlation).
        alpha: significance level of every adjusted p-value.
        models_light, models_deep: model-name prefixes of claims 1 and 2; claimed_light, claimed_deep: their methods.
    """

    methods: tuple[str, ...] = ("saliency", "ig", "rollout")
    metric: str = "gap_auc_target_change"
    baseline: str = "random_smooth"
    fidelity_metric: str = "attribution_fidelity"
    af_margin: float = 0.1
    alpha: float = 0.05
    models_light: tuple[str, ...] = ("meter_",)
    models_deep: tuple[str, ...] = ("pixelformer_",)
    claimed_light: str = "saliency"
    claimed_deep: str = "ig"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not self.af_margin > 0:
            raise ValueError(f"af_margin must be > 0, got {self.af_margin}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], alpha: float) -> ClaimRules:
        return cls(methods=tuple(section["methods"]), metric=section["metric"], baseline=section["baseline"],
                   af_margin=float(section["af_margin"]), alpha=float(alpha))


def _fmt(x: float) -> str:
    """Numbers as they appear in the Markdown and the ``comparisons``/``means`` strings (3 significant digits)."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _row(claim: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: np.nan for c in CLAIM_COLUMNS}
    row.update(claim=claim, scope="pair", dataset="", model="", metric="", role="primary", method="", best_method="",
               means="", comparisons="", reason="")
    row.update(fields)
    return row


def _wilcoxon(differences: np.ndarray, alternative: str) -> float:
    """Wilcoxon signed-rank p of paired differences (zeros dropped); 1 when every difference is 0, NaN without
    data."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative=alternative).pvalue)


def _best_by_mean(means: pd.Series) -> str:
    """The method with the highest mean, or ``""`` when the best mean is shared."""
    winners = [m for m, v in means.items() if v == means.max()]
    return winners[0] if len(winners) == 1 else ""


def _family_groups(scores: pd.DataFrame, prefixes: Sequence[str]) -> list[tuple[str, str]]:
    keys = scores[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    return [(d, m) for d, m in keys.itertuples(index=False) if str(m).startswith(tuple(prefixes))]


def _frame(scores: pd.DataFrame, dataset: str, model: str, metric: str, methods: Sequence[str]) -> pd.DataFrame:
    return scores[(scores["dataset"] == dataset) & (scores["model"] == model) & (scores["metric"] == metric)
                  & scores["method"].isin(list(methods))]


# --------------------------------------------------------------------------------------------- claims 1 and 2


def _friedman_p(matrix: pd.DataFrame) -> float:
    """Friedman p across the columns of an ``images x methods`` matrix; NaN below 3 methods or 2 images, 1 when
    every image ties every method (no evidence of a difference)."""
    if matrix.shape[1] < 3 or len(matrix) < 2:
        return float("nan")
    values = matrix.to_numpy()
    if np.all(values == values[:, :1]):
        return 1.0
    return float(stats.friedmanchisquare(*values.T).pvalue)


def _best_method_claim(scores: pd.DataFrame, claim: str, prefixes: Sequence[str], claimed: str, metric: str,
                       role: str, rules: ClaimRules) -> list[dict[str, Any]]:
    """The claims-1/2 rule for one metric over the claim's family of (dataset, model) pairs (module docstring)."""
    groups = _family_groups(scores, prefixes)
    if not groups:
        return [_row(claim, scope="all", metric=metric, role=role, method=claimed, verdict="not evaluated",
                     alpha=rules.alpha, reason=f"no model matching {' or '.join(prefixes)} in the scores")]
    prepared: list[dict[str, Any]] = []
    for dataset, model in groups:
        frame = _frame(scores, dataset, model, metric, rules.methods)
        base = {"dataset": dataset, "model": model}
        if frame.empty:
            prepared.append({**base, "decision": {"verdict": "not evaluated",
                                                  "reason": f"metric {metric} was not scored"}})
            continue
        matrix, _ = complete_blocks(frame)
        matrix = matrix.loc[:, [m for m in matrix.columns if np.isfinite(matrix[m]).any()]]
        if claimed not in matrix.columns:
            prepared.append({**base, "decision": {"verdict": "not evaluated",
                                                  "reason": f"method {claimed} was not scored on {metric}"}})
            continue
        if matrix.shape[1] < 2:
            prepared.append({**base, "decision": {"verdict": "not evaluated",
                                                  "reason": f"only {claimed} was scored: nothing to compare with"}})
            continue
        friedman_p = _friedman_p(matrix)
        pairs = [(a, b, _wilcoxon(matrix[a].to_numpy() - matrix[b].to_numpy(), "two-sided"),
                  rank_biserial(matrix[a].to_numpy() - matrix[b].to_numpy()))
                 for i, a in enumerate(matrix.columns) for b in matrix.columns[i + 1:]]
        prepared.append({**base, "matrix": matrix, "friedman_p": friedman_p, "pairs": pairs})
    testable = [g for g in prepared if "matrix" in g]
    friedman_adj = iter(holm_adjust([g["friedman_p"] for g in testable], nan_policy="omit"))
    pair_adj = iter(holm_adjust([p for g in testable for (_, _, p, _) in g["pairs"]], nan_policy="omit"))
    rows = []
    for g in prepared:
        if "matrix" not in g:
            rows.append(_row(claim, dataset=g["dataset"], model=g["model"], metric=metric, role=role, method=claimed,
                             alpha=rules.alpha, **g["decision"]))
            continue
        adjusted = [(a, b, next(pair_adj), effect) for (a, b, _, effect) in g["pairs"]]
        rows.append(_decide_best(g, claim, claimed, metric, role, rules, float(next(friedman_adj)), adjusted))
    verdicts = [r["verdict"] for r in rows]
    overall = ("supported" if all(v == "supported" for v in verdicts)
               else "not supported" if "not supported" in verdicts
               else "not evaluated" if all(v == "not evaluated" for v in verdicts) else "inconclusive")
    rows.append(_row(claim, scope="all", metric=metric, role=role, method=claimed, verdict=overall, alpha=rules.alpha,
                     reason=f"over {len(rows)} (dataset, model) pair(s): " + ", ".join(
                         f"{r['dataset']}/{r['model']} {r['verdict']}" for r in rows)))
    return rows


def _decide_best(group: Mapping[str, Any], claim: str, claimed: str, metric: str, role: str, rules: ClaimRules,
                 friedman_p: float, pairs: Sequence[tuple[str, str, float, float]]) -> dict[str, Any]:
    matrix: pd.DataFrame = group["matrix"]
    means = matrix.mean()
    best = _best_by_mean(means)
    out = _row(claim, dataset=group["dataset"], model=group["model"], metric=metric, role=role, method=claimed,
               alpha=rules.alpha, n_images=len(matrix), friedman_p_holm=friedman_p, best_method=best,
               claimed_mean=float(means[claimed]), means="; ".join(f"{m}={_fmt(float(v))}" for m, v in means.items()))
    comparisons, beaten_by, better_than_all = [], [], True
    for a, b, p, effect in pairs:
        if claimed not in (a, b):
            continue
        other, sign = (b, 1.0) if a == claimed else (a, -1.0)
        significant = p < rules.alpha
        better_than_all &= significant and sign * effect > 0
        if significant and sign * effect < 0:
            beaten_by.append(other)
        comparisons.append(f"vs {other}: p_holm={_fmt(p)}, r_rb={_fmt(sign * effect)}")
    out["comparisons"] = "; ".join(comparisons)
    if len(matrix) < 2:
        return {**out, "verdict": "inconclusive", "reason": f"only {len(matrix)} image(s) scored by every method"}
    if matrix.shape[1] >= 3 and not friedman_p < rules.alpha:
        return {**out, "verdict": "inconclusive",
                "reason": f"Friedman p_holm={_fmt(friedman_p)} >= alpha={rules.alpha:g}: no evidence that the "
                          "methods differ"}
    if beaten_by:
        return {**out, "verdict": "not supported",
                "reason": f"{', '.join(beaten_by)} significantly better than {claimed}"}
    if best == claimed and better_than_all:
        return {**out, "verdict": "supported",
                "reason": f"{claimed} has the best mean and is significantly better than every other method"}
    why = f"best mean is {best or 'shared'}" if best != claimed else "not significantly better than every other method"
    return {**out, "verdict": "inconclusive", "reason": f"{claimed}: {why}"}


# --------------------------------------------------------------------------------------------- claim 3


def _wide(frame: pd.DataFrame) -> pd.DataFrame:
    """``images x methods`` values of a one-metric frame."""
    return frame.pivot(index="image_id", columns="method", values="value")


def _paired(wide: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """Per-image differences ``a - b`` on the images where both are finite."""
    d = (wide[a] - wide[b]).to_numpy(np.float64)
    return d[np.isfinite(d)]


def _standardised_gap(conv: pd.DataFrame, fid: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """Per image ``dAF / s_AF - dconv / s_conv`` of ``a - b`` (images with both metrics), the disagreement."""
    joined = pd.concat([(conv[a] - conv[b]).rename("conv"), (fid[a] - fid[b]).rename("fid")], axis=1,
                       join="inner").dropna()
    if len(joined) < 2:
        return np.zeros(0)
    s_conv, s_fid = float(joined["conv"].std(ddof=1)), float(joined["fid"].std(ddof=1))
    if not (s_conv > 0 and s_fid > 0):
        return np.zeros(0)
    return (joined["fid"] / s_fid - joined["conv"] / s_conv).to_numpy(np.float64)


def _fidelity_claim(scores: pd.DataFrame, rules: ClaimRules, metric: str, role: str) -> list[dict[str, Any]]:
    """The claim-3 rule for one conventional metric over every (dataset, model) pair (module docstring)."""
    keys = scores[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    if keys.empty:
        return [_row("3", scope="all", metric=metric, role=role, verdict="not evaluated", alpha=rules.alpha,
                     reason="no scores")]
    groups: list[dict[str, Any]] = []
    for dataset, model in keys.itertuples(index=False):
        conv = _frame(scores, dataset, model, metric, [*rules.methods, rules.baseline])
        fid = _frame(scores, dataset, model, rules.fidelity_metric, [*rules.methods, rules.baseline])
        group: dict[str, Any] = {"dataset": dataset, "model": model}
        present = set(conv["method"]) & set(fid["method"])
        methods = [m for m in rules.methods if m in present]
        if conv.empty or fid.empty:
            missing = metric if conv.empty else rules.fidelity_metric
            group["decision"] = {"verdict": "not evaluated", "reason": f"metric {missing} was not scored"}
        elif rules.baseline not in present:
            group["decision"] = {"verdict": "not evaluated",
                                 "reason": f"the {rules.baseline} baseline was not scored on both metrics"}
        elif not methods:
            group["decision"] = {"verdict": "not evaluated", "reason": f"none of {list(rules.methods)} was scored"}
        else:
            conv_wide, fid_wide = _wide(conv), _wide(fid)
            group.update(fid=fid, methods=methods, tests=[])
            for m in methods:
                d_conv = _paired(conv_wide, m, rules.baseline)
                d_fid = _paired(fid_wide, m, rules.baseline)
                group["tests"].append(("conv", m, "", _wilcoxon(d_conv, "greater"), d_conv.size))
                group["tests"].append(("no_better", m, "", _wilcoxon(d_fid - rules.af_margin, "less"), d_fid.size))
                tost = max(_wilcoxon(d_fid - rules.af_margin, "less"), _wilcoxon(d_fid + rules.af_margin, "greater"))
                group.setdefault("tost", {})[m] = tost
                for other in methods:
                    if other != m:
                        gap = _standardised_gap(conv_wide, fid_wide, m, other)
                        group["tests"].append(("disagree", m, other, _wilcoxon(gap, "less"), gap.size))
        groups.append(group)
    testable = [g for g in groups if "tests" in g]
    conv_adj = iter(holm_adjust([t[3] for g in testable for t in g["tests"] if t[0] == "conv"], nan_policy="omit"))
    fid_adj = iter(holm_adjust([t[3] for g in testable for t in g["tests"] if t[0] != "conv"], nan_policy="omit"))
    rows = []
    for g in groups:
        if "tests" not in g:
            rows.append(_row("3", dataset=g["dataset"], model=g["model"], metric=f"{metric} + {rules.fidelity_metric}",
                             role=role, alpha=rules.alpha, **g["decision"]))
            continue
        adjusted = [(*t[:3], next(conv_adj) if t[0] == "conv" else next(fid_adj), t[4]) for t in g["tests"]]
        rows.append(_decide_fidelity(g, adjusted, rules, metric, role))
    verdicts = [r["verdict"] for r in rows]
    overall = ("supported" if "supported" in verdicts else "not supported" if "not supported" in verdicts
               else "not evaluated" if all(v == "not evaluated" for v in verdicts) else "inconclusive")
    rows.append(_row("3", scope="all", metric=f"{metric} + {rules.fidelity_metric}", role=role, verdict=overall,
                     alpha=rules.alpha, method=";".join(sorted({m for r in rows if r["verdict"] == "supported"
                                                                for m in str(r["method"]).split(";") if m})),
                     reason=f"over {len(rows)} (dataset, model) pair(s): " + ", ".join(
                         f"{r['dataset']}/{r['model']} {r['verdict']}" for r in rows)))
    return rows


def _decide_fidelity(group: Mapping[str, Any], tests: Sequence[tuple[str, str, str, float, int]], rules: ClaimRules,
                     metric: str, role: str) -> dict[str, Any]:
    fid = group["fid"]
    means = fid.groupby("method")["value"].mean()
    passes = {m: p < rules.alpha for kind, m, _, p, _ in tests if kind == "conv"}
    details: dict[str, list[str]] = {m: [] for m in group["methods"]}
    fails: dict[str, list[str]] = {m: [] for m in group["methods"]}
    for kind, m, other, p, n in tests:
        if kind == "conv":
            details[m].insert(0, f"{m}: {metric} > {rules.baseline} p_holm={_fmt(p)} (n={n})")
        elif kind == "no_better":
            details[m].append(f"AF no better than {rules.baseline} (margin {rules.af_margin:g}) p_holm={_fmt(p)}, "
                              f"TOST equivalence p={_fmt(group['tost'][m])}")
            if p < rules.alpha:
                fails[m].append(f"AF no better than {rules.baseline}")
        else:
            details[m].append(f"AF below {other} beyond {metric} p_holm={_fmt(p)}")
            if p < rules.alpha:
                fails[m].append(f"AF ranks it below {other} beyond what {metric} shows")
    failing = [m for m in group["methods"] if passes.get(m) and fails[m]]
    satisfactory = [m for m in group["methods"] if passes.get(m)]
    out = _row("3", dataset=group["dataset"], model=group["model"], metric=f"{metric} + {rules.fidelity_metric}",
               role=role, alpha=rules.alpha, n_images=int(max(n for *_, n in tests)),
               best_method=_best_by_mean(means.drop(rules.baseline, errors="ignore")),
               means="; ".join(f"{m}={_fmt(float(v))}" for m, v in means.items()),
               comparisons=" | ".join("; ".join(parts) for parts in details.values()))
    if failing:
        return {**out, "method": ";".join(failing), "verdict": "supported",
                "reason": "; ".join(f"{m}: {metric} significantly above {rules.baseline}, but {' and '.join(fails[m])}"
                                    for m in failing)}
    if satisfactory:
        return {**out, "verdict": "not supported",
                "reason": f"{', '.join(satisfactory)} pass {metric}, and for none is AF shown to disagree"}
    return {**out, "verdict": "inconclusive",
            "reason": f"no method's {metric} is significantly above {rules.baseline}'s"}


# --------------------------------------------------------------------------------------------- all claims


def scheme_metrics(scores: pd.DataFrame, metric: str) -> list[tuple[str, str]]:
    """``[(role, metric)]``: the primary metric, then the same metric under every other removal scheme present
    (``<metric>@<scheme>``, role ``scheme:<scheme>``)."""
    present = sorted(set(scores["metric"]))
    return [("primary", metric)] + [(f"scheme:{m.split('@', 1)[1]}", m) for m in present if m.startswith(metric + "@")]


def evaluate_claims(scores: pd.DataFrame, rules: ClaimRules | None = None) -> pd.DataFrame:
    """Verdicts on the paper's three claims (decision rules in the module docstring).

    Args:
        scores: tidy per-image scores, columns ``dataset, model, method, image_id, metric, value`` (NaN = missing);
            the MoRF-LeRF gaps are derived here when absent (:func:`depthxai.stats.run.add_gap_metrics`).
        rules: the decision rules' settings.

    Returns:
        :data:`CLAIM_COLUMNS`: per claim and role (the primary metric, then each other removal scheme), one row per
        (dataset, model) (``scope = pair``) and one for the claim as a whole (``scope = all``); sorted by claim,
        role (primary first), scope (pairs first), dataset, model. ``method`` is the claimed method (claims 1/2) or
        the methods that support claim 3; ``comparisons`` hold the Holm-adjusted p-values and effects behind a
        verdict (positive rank-biserial = the claimed method scores higher).
    """
    from depthxai.stats.run import add_gap_metrics

    rules = rules or ClaimRules()
    scores = numeric_scores(scores)
    if metric_direction(rules.metric) != "higher" or metric_direction(rules.fidelity_metric) != "higher":
        raise ValueError(f"the claims need higher-is-better metrics, got {rules.metric} and {rules.fidelity_metric}")
    if not scores["metric"].str.startswith("gap_auc_").any():
        scores = add_gap_metrics(scores)
    rows: list[dict[str, Any]] = []
    for role, metric in scheme_metrics(scores, rules.metric):
        rows += _best_method_claim(scores, "1", rules.models_light, rules.claimed_light, metric, role, rules)
        rows += _best_method_claim(scores, "2", rules.models_deep, rules.claimed_deep, metric, role, rules)
        rows += _fidelity_claim(scores, rules, metric, role)
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    table["n_images"] = table["n_images"].astype("Int64")
    table["_role"] = table["role"].map(lambda r: (r != "primary", r))
    table["_scope"] = table["scope"] == "all"
    table = table.sort_values(["claim", "_role", "_scope", "dataset", "model"], kind="stable")
    return table.drop(columns=["_role", "_scope"]).reset_index(drop=True)


def rules_markdown(rules: ClaimRules) -> str:
    """The decision rules as they are written into ``results/claims.md``."""
    methods = ", ".join(rules.methods)
    return f"""\
## Decision rules

Fixed before any result was seen; see `depthxai.report.claims` for the implementation.

- **Compared**: the paper's methods only ({methods}); the learned explainer and the baselines are not part of the
  paper's claims. **Conventional metric**: `{rules.metric}`, the MoRF - LeRF gap of the change of the explained
  scalar (higher is better), under the primary removal scheme; the same rules are repeated under every other
  removal scheme (role `scheme:<name>`). **Reference**: `{rules.baseline}`. alpha = {rules.alpha:g}.
- **Claims 1 and 2** ("X gives the best maps"), over every (dataset, model) pair of the claim's model: Friedman
  test across the methods, two-sided Wilcoxon signed-rank tests of all pairs; Holm's correction across the whole
  family (all Friedman p-values of the claim; all its Wilcoxon p-values). Per pair: Friedman not significant ->
  *inconclusive*; another method significantly better than X -> *not supported*; X best mean and significantly
  better than every other method -> *supported*; else *inconclusive*. Whole claim: supported where every pair is,
  not supported where any pair is, else inconclusive.
- **Claim 3**: a method *passes* the conventional metric when its gap is significantly above `{rules.baseline}`
  (one-sided Wilcoxon, Holm over all methods and pairs). It *fails Attribution Fidelity* when either is shown (all
  AF tests of the claim in one Holm family): its AF is no better than `{rules.baseline}`'s by the margin
  {rules.af_margin:g} (non-superiority, the upper one-sided test of TOST; TOST's equivalence p is reported), or AF
  ranks it below another method by more than the conventional metric does (one-sided Wilcoxon on the per-image
  differences of both metrics, each divided by its standard deviation: identical effects on both metrics never
  count). Some method passes and fails AF -> *supported*; some pass and none fails -> *not supported* (no
  disagreement shown); none passes -> *inconclusive*. Whole claim: supported where any pair is.
- A claim whose model, method, baseline or metric is missing from the run is *not evaluated*.
- `p_holm`: Holm-adjusted p-value; `r_rb`: matched-pairs rank-biserial effect (positive = the claimed method
  scores higher). Numbers are rounded to 3 significant digits.
"""


def _cell(value: Any) -> str:
    """A table cell: missing values blank, floats as :func:`_fmt`, pipes escaped."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return _fmt(float(value))
    return str(value).replace("|", "\\|")


def write_claims_markdown(claims: pd.DataFrame, path: str | os.PathLike[str], rules: ClaimRules | None = None) -> str:
    """Write the verdicts of :func:`evaluate_claims` as Markdown (``results/claims.md``), atomically.

    Returns:
        The Markdown text written.
    """
    rules = rules or ClaimRules()
    lines = ["# The paper's claims, checked", "", rules_markdown(rules)]
    for claim in sorted(claims["claim"].unique()):
        subset = claims[claims["claim"] == claim]
        overall = subset[(subset["scope"] == "all") & (subset["role"] == "primary")]
        verdict = overall["verdict"].iloc[0] if len(overall) else "not evaluated"
        lines += [f"## Claim {claim}: {CLAIM_STATEMENTS.get(claim, '')}", "", f"**Verdict: {verdict}** "
                  f"(primary metric; per pair and per removal scheme below).", ""]
        if claim == "3":
            header = ["role", "scope", "dataset", "model", "verdict", "method", "n_images", "best_method", "means",
                      "reason"]
            labels = ["metric", "scope", "dataset", "model", "verdict", "failing method(s)", "n", "best AF", "mean AF",
                      "reason"]
        else:
            header = ["role", "scope", "dataset", "model", "verdict", "n_images", "friedman_p_holm", "best_method",
                      "claimed_mean", "means", "comparisons", "reason"]
            labels = ["metric", "scope", "dataset", "model", "verdict", "n", "Friedman p_holm", "best (mean)",
                      "mean of claimed", "means", "claimed vs others", "reason"]
        lines.append("| " + " | ".join(labels) + " |")
        lines.append("|" + "---|" * len(labels))
        for row in subset.to_dict("records"):
            lines.append("| " + " | ".join(_cell(row[c]) for c in header) + " |")
        if claim == "3":
            lines += ["", "Tests behind claim 3:", ""]
            for row in subset.to_dict("records"):
                if row["comparisons"]:
                    label = f"{row['dataset']} / {row['model']} ({row['role']})"
                    lines += [f"- {label}:"] + [f"  - {part.strip()}" for part in str(row["comparisons"]).split(" | ")]
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    write_text(path, text)
    return text
