"""The paper's claims, checked against the per-image scores with a fixed decision rule (``results/claims.md``).

Cirillo et al. (IJCNN 2025) claim:

1. Saliency gives the best maps for the lightweight model (METER);
2. Integrated Gradients gives the best maps for the deep model (PixelFormer);
3. Attribution Fidelity exposes a method that fails even where the conventional metrics look satisfactory.

Decision rules (fixed before looking at any result; the same text is written into the Markdown):

**Claims 1 and 2** ("method X is best"), per (dataset, model) of the claim's model family and per metric (the
primary metric decides; the secondary metric is reported for transparency with the same rule). The compared
methods are every scored method except the ``random`` baseline. Whether higher or lower is better comes from
:func:`depthxai.stats.run.metric_direction` (MoRF AUC and Attribution Fidelity: higher; LeRF AUC and Infidelity:
lower).

* Omnibus: Friedman test across the compared methods on the images scored by all of them (with exactly two
  methods, the single Wilcoxon test below is the test). Not significant at ``alpha`` -> **inconclusive**.
* Post hoc: two-sided Wilcoxon signed-rank tests of every pair, Holm-corrected over the pairs
  (:func:`depthxai.stats.tests.pairwise_wilcoxon`); "A significantly better than B" means adjusted p < ``alpha`` and
  the rank-biserial effect favours A in the metric's direction.
* X has the best mean and is significantly better than every other method -> **supported**; another method is
  significantly better than X -> **not supported**; otherwise -> **inconclusive**.

**Claim 3**, per (dataset, model). For every compared method M (not the baseline):

* conventional test: M's MoRF AUC (``conventional_metric``) against the baseline's, two-sided Wilcoxon, Holm over
  the methods; M "looks satisfactory" if significantly better than the baseline;
* fidelity test: M fails Attribution Fidelity if its AF is not significantly better than the baseline's (same
  test and correction), or if it is significantly worse than the AF of the method with the best mean AF
  (two-sided Wilcoxon of the best method against each other method, Holm over those comparisons).
* Some M looks satisfactory and fails AF -> **supported** (those methods are named); at least one M looks
  satisfactory and every such M passes AF -> **not supported**; no M looks satisfactory -> **inconclusive**.
* The second clause of the fidelity test makes the claim supported whenever the methods merely differ in quality,
  even where the conventional metric shows the same difference (then AF exposes nothing the conventional metric
  did not). The **strict** verdict (``verdict_strict``, reported alongside, never replacing the main one) counts an
  AF gap to the best method only where M's MoRF AUC is *not* significantly worse than that method's (same test,
  Holm over the same comparisons), i.e. where AF and the conventional metric disagree.

A claim whose model family, claimed method, baseline or metric is absent from the scores is **not evaluated**, with
the reason. With fewer than 6 images a two-sided Wilcoxon test cannot reach p < 0.05, so small runs come out
inconclusive rather than supported: that is the rule working, not a defect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from depthxai.fileio import write_text
from depthxai.stats.run import metric_direction
from depthxai.stats.tests import complete_blocks, friedman, holm_adjust, pairwise_wilcoxon

VERDICTS = ("supported", "not supported", "inconclusive", "not evaluated")

CLAIM_STATEMENTS = {
    "1": "Saliency gives the best maps for the lightweight model (METER).",
    "2": "Integrated Gradients gives the best maps for the deep model (PixelFormer).",
    "3": "Attribution Fidelity exposes a method that fails even where the conventional metrics look satisfactory.",
}

CLAIM_COLUMNS = ["claim", "dataset", "model", "metric", "role", "method", "verdict", "n_images", "friedman_statistic",
                 "friedman_p", "kendall_w", "best_method", "claimed_mean", "means", "comparisons", "reason",
                 "verdict_strict", "method_strict", "alpha"]


def _fmt(x: float) -> str:
    """Numbers as they appear in the Markdown and the ``comparisons``/``means`` strings (3 significant digits)."""
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _row(claim: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: np.nan for c in CLAIM_COLUMNS}
    row.update(claim=claim, dataset="", model="", metric="", role="", method="", best_method="", means="",
               comparisons="", reason="", verdict_strict="", method_strict="")
    row.update(fields)
    return row


def _favours(pair: Mapping[str, Any], winner: str, direction: str) -> bool:
    """Whether the pair's rank-biserial effect (positive: ``group_a`` higher) favours ``winner``."""
    effect = float(pair["rank_biserial"])
    if effect == 0:
        return False
    a_higher = effect > 0
    a_better = a_higher == (direction == "higher")
    return a_better == (pair["group_a"] == winner)


def _best_by_mean(means: pd.Series, direction: str) -> str:
    """The method with the best mean, or ``""`` when the best mean is shared (no unique best)."""
    best_value = means.max() if direction == "higher" else means.min()
    winners = [m for m, v in means.items() if v == best_value]
    return winners[0] if len(winners) == 1 else ""


def _best_method_decision(frame: pd.DataFrame, claimed: str, metric: str, alpha: float) -> dict[str, Any]:
    """The claims-1/2 rule on one (dataset, model, metric) frame of the compared methods (baseline removed)."""
    direction = metric_direction(metric)
    if direction is None:
        return {"verdict": "not evaluated", "reason": f"metric {metric} has no better direction"}
    finite = frame.groupby("method")["value"].apply(lambda v: bool(np.isfinite(v.to_numpy(float)).any()))
    frame = frame[frame["method"].isin([m for m, ok in finite.items() if ok])]  # a method never scored is absent
    methods = sorted(frame["method"].unique())
    if claimed not in methods:
        return {"verdict": "not evaluated", "reason": f"method {claimed} was not scored on {metric}"}
    if len(methods) < 2:
        return {"verdict": "not evaluated", "reason": f"only {claimed} was scored: nothing to compare with"}
    matrix, _ = complete_blocks(frame)
    n = len(matrix)
    out: dict[str, Any] = {"n_images": n}
    if n < 2:
        return {**out, "verdict": "inconclusive", "reason": f"only {n} image(s) scored by every method"}
    means = matrix.mean()
    best = _best_by_mean(means, direction)
    out.update(best_method=best, claimed_mean=float(means[claimed]),
               means="; ".join(f"{m}={_fmt(float(v))}" for m, v in means.items()))
    if len(methods) >= 3:
        omnibus = friedman(frame)
        out.update(friedman_statistic=omnibus.statistic, friedman_p=omnibus.p, kendall_w=omnibus.kendall_w)
    pairs = pairwise_wilcoxon(frame, correction="holm").to_dict("records")
    against = [p for p in pairs if claimed in (p["group_a"], p["group_b"])]
    comparisons, better_than_all, beaten_by = [], True, []
    for pair in against:
        other = pair["group_b"] if pair["group_a"] == claimed else pair["group_a"]
        significant = pair["p_adjusted"] < alpha
        claimed_better = significant and _favours(pair, claimed, direction)
        other_better = significant and _favours(pair, other, direction)
        better_than_all &= claimed_better
        if other_better:
            beaten_by.append(other)
        sign = 1.0 if pair["group_a"] == claimed else -1.0
        comparisons.append(f"vs {other}: p_holm={_fmt(pair['p_adjusted'])}, "
                           f"r_rb={_fmt(sign * float(pair['rank_biserial']))}")
    out["comparisons"] = "; ".join(comparisons)
    if len(methods) >= 3 and not out["friedman_p"] < alpha:
        return {**out, "verdict": "inconclusive",
                "reason": f"Friedman p={_fmt(out['friedman_p'])} >= alpha={alpha:g}: "
                          "no evidence that the methods differ"}
    if len(methods) == 2 and not against[0]["p_adjusted"] < alpha:
        return {**out, "verdict": "inconclusive",
                "reason": f"two methods, Wilcoxon p={_fmt(against[0]['p_adjusted'])} >= alpha={alpha:g}"}
    if beaten_by:
        return {**out, "verdict": "not supported",
                "reason": f"{', '.join(beaten_by)} significantly better than {claimed}"}
    if best == claimed and better_than_all:
        return {**out, "verdict": "supported",
                "reason": f"{claimed} has the best mean and is significantly better than every other method"}
    why = (f"best mean is {best or 'shared'}" if best != claimed
           else "not significantly better than every other method")
    return {**out, "verdict": "inconclusive", "reason": f"{claimed}: {why}"}


def _versus(frame: pd.DataFrame, method: str, reference: str) -> tuple[float, float, int]:
    """Two-sided Wilcoxon of ``method`` vs ``reference`` on their common images: ``(p_raw, effect, n)`` with the
    rank-biserial effect of ``method - reference`` (positive: ``method`` higher)."""
    pair_frame = frame[frame["method"].isin([method, reference])]
    matrix, _ = complete_blocks(pair_frame)
    if len(matrix) < 1 or matrix.shape[1] < 2:
        return float("nan"), float("nan"), len(matrix)
    pair = pairwise_wilcoxon(pair_frame, correction="none").iloc[0]
    sign = 1.0 if pair["group_a"] == method else -1.0
    return float(pair["p_raw"]), sign * float(pair["rank_biserial"]), len(matrix)


def _holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN (untestable) entries stay NaN and do not count in the family."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = holm_adjust(p[finite])
    return out


def _fidelity_decision(frame: pd.DataFrame, baseline: str, conventional: str, fidelity: str,
                       alpha: float) -> dict[str, Any]:
    """The claim-3 rule on one (dataset, model) frame with the conventional and fidelity metrics."""
    conv_dir, fid_dir = metric_direction(conventional), metric_direction(fidelity)
    for metric, direction in ((conventional, conv_dir), (fidelity, fid_dir)):
        if metric not in set(frame["metric"]):
            return {"verdict": "not evaluated", "reason": f"metric {metric} was not scored"}
        if direction is None:
            return {"verdict": "not evaluated", "reason": f"metric {metric} has no better direction"}
    conv = frame[frame["metric"] == conventional]
    fid = frame[frame["metric"] == fidelity]
    if baseline not in set(conv["method"]) or baseline not in set(fid["method"]):
        return {"verdict": "not evaluated", "reason": f"the {baseline} baseline was not scored on both metrics"}
    methods = sorted((set(conv["method"]) & set(fid["method"])) - {baseline})
    if not methods:
        return {"verdict": "not evaluated", "reason": "no method besides the baseline was scored"}
    sign = {"higher": 1.0, "lower": -1.0}

    conv_tests = [_versus(conv, m, baseline) for m in methods]
    conv_p = _holm([t[0] for t in conv_tests])
    passes_conv = [bool(p < alpha and sign[conv_dir] * t[1] > 0) for p, t in zip(conv_p, conv_tests)]

    fid_tests = [_versus(fid, m, baseline) for m in methods]
    fid_p = _holm([t[0] for t in fid_tests])
    above_random = [bool(p < alpha and sign[fid_dir] * t[1] > 0) for p, t in zip(fid_p, fid_tests)]

    fid_matrix, _ = complete_blocks(fid[fid["method"].isin(methods)])
    fid_means = fid_matrix.mean() if len(fid_matrix) else pd.Series(dtype=float)
    best = _best_by_mean(fid_means, fid_dir) if len(fid_means) else ""
    others = [m for m in methods if m != best] if best else []
    best_tests = {m: _versus(fid, best, m) for m in others}
    best_p = dict(zip(others, _holm([best_tests[m][0] for m in others])))
    below_best = {m: bool(best_p[m] < alpha and sign[fid_dir] * best_tests[m][1] > 0) for m in others}
    # strict variant: an AF gap to the best method counts only where the conventional metric does not show it too
    conv_best_tests = {m: _versus(conv, best, m) for m in others}
    conv_best_p = dict(zip(others, _holm([conv_best_tests[m][0] for m in others])))
    conv_below_best = {m: bool(conv_best_p[m] < alpha and sign[conv_dir] * conv_best_tests[m][1] > 0) for m in others}

    details, failing, failing_strict = [], [], []
    for i, m in enumerate(methods):
        fails_af = (not above_random[i]) or below_best.get(m, False)
        fails_af_strict = (not above_random[i]) or (below_best.get(m, False) and not conv_below_best.get(m, False))
        if passes_conv[i] and fails_af:
            failing.append(m)
        if passes_conv[i] and fails_af_strict:
            failing_strict.append(m)
        text = (f"{m}: {conventional} vs {baseline} p_holm={_fmt(conv_p[i])} r_rb={_fmt(conv_tests[i][1])}; "
                f"{fidelity} vs {baseline} p_holm={_fmt(fid_p[i])} r_rb={_fmt(fid_tests[i][1])}")
        if m in best_p:
            text += (f"; {fidelity} {best} vs {m} p_holm={_fmt(best_p[m])} r_rb={_fmt(best_tests[m][1])}"
                     f"; {conventional} {best} vs {m} p_holm={_fmt(conv_best_p[m])} r_rb={_fmt(conv_best_tests[m][1])}")
        details.append(text)
    out: dict[str, Any] = {
        "n_images": int(max(t[2] for t in conv_tests)), "best_method": best,
        "means": "; ".join(f"{m}={_fmt(float(v))}" for m, v in fid_means.items()),
        "comparisons": " | ".join(details),
    }
    satisfactory = [m for m, ok in zip(methods, passes_conv) if ok]
    out["verdict_strict"] = ("supported" if failing_strict else "not supported" if satisfactory else "inconclusive")
    if failing_strict:
        out["method_strict"] = ";".join(failing_strict)
    if failing:
        return {**out, "method": ";".join(failing), "verdict": "supported",
                "reason": f"{', '.join(failing)}: {conventional} significantly better than {baseline}, "
                          f"but {fidelity} not significantly better than {baseline} or significantly worse than {best}"}
    if satisfactory:
        return {**out, "verdict": "not supported",
                "reason": f"every method whose {conventional} beats {baseline} ({', '.join(satisfactory)}) "
                          f"also passes {fidelity}"}
    return {**out, "verdict": "inconclusive",
            "reason": f"no method's {conventional} is significantly better than {baseline}'s"}


def _family_groups(scores: pd.DataFrame, prefixes: Sequence[str]) -> list[tuple[str, str]]:
    keys = scores[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    return [(d, m) for d, m in keys.itertuples(index=False) if str(m).startswith(tuple(prefixes))]


def evaluate_claims(scores: pd.DataFrame, *, alpha: float = 0.05, models_light: Sequence[str] = ("meter_",),
                    models_deep: Sequence[str] = ("pixelformer_",), primary_metric: str = "morf_auc_depth_rmse",
                    secondary_metric: str = "lerf_auc_depth_rmse", conventional_metric: str | None = None,
                    fidelity_metric: str = "attribution_fidelity", baseline: str = "random",
                    claimed_light: str = "saliency", claimed_deep: str = "ig") -> pd.DataFrame:
    """Verdicts on the paper's three claims (decision rules in the module docstring).

    Args:
        scores: tidy per-image scores, columns ``dataset, model, method, image_id, metric, value`` (the evaluate
            stage's merged table; NaN = missing).
        alpha: significance level (of the Friedman test and of the Holm-adjusted Wilcoxon p-values).
        models_light, models_deep: model-name prefixes of the lightweight (claim 1) and deep (claim 2) families.
        primary_metric: the metric that decides claims 1 and 2.
        secondary_metric: reported with the same rule, for transparency (``role`` ``secondary``).
        conventional_metric: claim 3's conventional metric (default ``primary_metric``).
        fidelity_metric: the Attribution Fidelity metric.
        baseline: the random baseline's method name (excluded from claims 1/2, the reference of claim 3).
        claimed_light, claimed_deep: the methods claims 1 and 2 name.

    Returns:
        :data:`CLAIM_COLUMNS`, one row per claim x (dataset, model) [x role for claims 1/2], sorted by claim,
        dataset, model, role; a claim whose model family is absent gets one ``not evaluated`` row. ``method`` is the
        claimed method (claims 1/2) or the methods that support claim 3; ``verdict_strict`` / ``method_strict``:
        claim 3 under the strict variant (empty for claims 1/2); ``means`` and ``comparisons`` hold the
        numbers behind the verdict (``comparisons``: Holm-adjusted p and rank-biserial effect, positive = the
        named method scores higher); ``friedman_*`` are NaN where no Friedman test was run.
    """
    missing = [c for c in ("dataset", "model", "method", "image_id", "metric", "value") if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks columns {missing}; have {list(scores.columns)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    scores = scores[["dataset", "model", "method", "image_id", "metric", "value"]].copy()
    scores["value"] = pd.to_numeric(scores["value"], errors="coerce").astype(np.float64)
    conventional_metric = conventional_metric or primary_metric
    rows = []
    for claim, prefixes, claimed in (("1", models_light, claimed_light), ("2", models_deep, claimed_deep)):
        groups = _family_groups(scores, prefixes)
        if not groups:
            rows.append(_row(claim, method=claimed, verdict="not evaluated", alpha=alpha,
                             reason=f"no model matching {' or '.join(prefixes)} in the scores"))
            continue
        for dataset, model in groups:
            for role, metric in (("primary", primary_metric), ("secondary", secondary_metric)):
                frame = scores[(scores["dataset"] == dataset) & (scores["model"] == model)
                               & (scores["metric"] == metric) & (scores["method"] != baseline)]
                if frame.empty:
                    decision = {"verdict": "not evaluated", "reason": f"metric {metric} was not scored"}
                else:
                    decision = _best_method_decision(frame, claimed, metric, alpha)
                rows.append(_row(claim, dataset=dataset, model=model, metric=metric, role=role, method=claimed,
                                 alpha=alpha, **decision))
    keys = scores[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    for dataset, model in keys.itertuples(index=False):
        frame = scores[(scores["dataset"] == dataset) & (scores["model"] == model)]
        decision = _fidelity_decision(frame, baseline, conventional_metric, fidelity_metric, alpha)
        decision.setdefault("verdict_strict", decision["verdict"])
        rows.append(_row("3", dataset=dataset, model=model, metric=f"{conventional_metric} + {fidelity_metric}",
                         role="primary", alpha=alpha, **decision))
    if keys.empty:
        rows.append(_row("3", verdict="not evaluated", verdict_strict="not evaluated", alpha=alpha, reason="no scores"))
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    table["n_images"] = table["n_images"].astype("Int64")
    return table.sort_values(["claim", "dataset", "model", "role"], kind="stable").reset_index(drop=True)


_RULES_MD = """\
## Decision rules

Fixed before any result was seen; see `depthxai.report.claims` for the implementation.

- **Claims 1 and 2** ("X gives the best maps"), per (dataset, model) of the claim's family: the compared methods
  are all scored methods except the `random` baseline; better = higher for MoRF AUC and Attribution Fidelity,
  lower for LeRF AUC and Infidelity. Friedman test across the methods (two methods: the Wilcoxon test alone);
  not significant at alpha -> *inconclusive*. Post hoc: two-sided Wilcoxon signed-rank tests of all pairs,
  Holm-corrected. X has the best mean and is significantly better than every other method -> *supported*;
  another method is significantly better than X -> *not supported*; otherwise *inconclusive*. The primary
  metric decides; the secondary metric is shown with the same rule for transparency.
- **Claim 3**, per (dataset, model): a method "looks satisfactory" if its MoRF AUC is significantly better
  than the random baseline's (two-sided Wilcoxon, Holm over methods); it "fails Attribution Fidelity" if its AF
  is not significantly better than the baseline's (same test) or significantly worse than the AF of the method
  with the best mean AF (Holm over those comparisons). Some method looks satisfactory and fails AF ->
  *supported*; every satisfactory method passes AF -> *not supported*; no method looks satisfactory ->
  *inconclusive*. *Strict* verdict (shown alongside): an AF gap to the best method counts only where the
  method's MoRF AUC is not also significantly worse than that method's (AF and MoRF disagree).
- A claim whose model family, method, baseline or metric is missing from the run is *not evaluated*.
- `p_holm`: Holm-adjusted p-value; `r_rb`: matched-pairs rank-biserial effect (positive = the first-named
  method scores higher). Numbers are rounded to 3 significant digits.
"""


def _cell(value: Any) -> str:
    """A table cell: missing values blank, floats as :func:`_fmt`, pipes escaped."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return _fmt(float(value))
    return str(value).replace("|", "\\|")


def write_claims_markdown(claims: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """Write the verdicts of :func:`evaluate_claims` as Markdown (``results/claims.md``), atomically.

    Returns:
        The Markdown text written.
    """
    alphas = sorted(set(float(a) for a in claims["alpha"].dropna()))
    lines = ["# The paper's claims, checked", ""]
    if alphas:
        lines += [f"Significance level alpha = {', '.join(f'{a:g}' for a in alphas)}.", ""]
    lines += [_RULES_MD]
    for claim in sorted(claims["claim"].unique()):
        subset = claims[claims["claim"] == claim]
        counts = subset[subset["role"].isin(["primary", ""])]["verdict"].value_counts()
        summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
        lines += [f"## Claim {claim}: {CLAIM_STATEMENTS.get(claim, '')}", "",
                  f"Verdicts (deciding rows): {summary}.", ""]
        if claim == "3":
            header = ["dataset", "model", "verdict", "method", "verdict_strict", "method_strict", "n_images",
                      "best_method", "means", "reason"]
            labels = ["dataset", "model", "verdict", "failing method(s)", "strict verdict", "failing (strict)", "n",
                      "best AF", "mean AF", "reason"]
        else:
            header = ["dataset", "model", "role", "metric", "verdict", "n_images", "friedman_statistic", "friedman_p",
                      "kendall_w", "best_method", "claimed_mean", "means", "comparisons", "reason"]
            labels = ["dataset", "model", "role", "metric", "verdict", "n", "Friedman chi2", "Friedman p",
                      "Kendall W", "best (mean)", "mean of claimed", "means", "claimed vs others", "reason"]
        lines.append("| " + " | ".join(labels) + " |")
        lines.append("|" + "---|" * len(labels))
        for row in subset.to_dict("records"):
            lines.append("| " + " | ".join(_cell(row[c]) for c in header) + " |")
        if claim == "3":
            lines += ["", "Tests behind claim 3:", ""]
            for row in subset.to_dict("records"):
                if row["comparisons"]:
                    label = f"{row['dataset']} / {row['model']}"
                    lines += [f"- {label}:"] + [f"  - {part.strip()}" for part in str(row["comparisons"]).split(" | ")]
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    write_text(path, text)
    return text
