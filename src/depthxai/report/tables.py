"""The paper's tables from the statistics stage: Table 1 (perturbation), Table 2 (Attribution Fidelity and
Infidelity) and the depth-accuracy table of the models.

A table is built as a tidy, full-precision data frame (one row per dataset x model [x method]) and written
by :func:`~depthxai.report.render.write_table` three ways: ``.csv`` (every column at full precision), ``.md``
(rounded, with a caption line) and ``.tex`` (booktabs), following column-name conventions
(:mod:`depthxai.report.render`):

* ``dataset``, ``model``, ``method``: key columns, shown with display names; repeats within a block are blanked.
* ``<q>_mean`` with ``<q>_ci_low`` / ``<q>_ci_high``: one cell ``mean [low, high]``; bold where ``best_<q>`` is true.
* ``friedman_p_<q>``: the Friedman p-value of quantity ``<q>``, constant within a (dataset, model) block and
  shown on the block's first row.
* ``n``, ``<q>_n``, ``<q>_n_missing``: counts (a missing-count column that is all zero is not rendered);
  other float columns: numbers.

Numbers are rounded per column to three significant digits of the column's median magnitude.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.report.labels import (
    BASELINE_METHODS,
    HEADERS,
    KEY_COLUMNS,
    METHOD_NOTES,
    METHOD_ORDER,
    Header,
    display_name,
    header_of,
    latex_escape,
    method_sort_key,
    scheme_name,
    sort_methods,
)
from depthxai.report.render import to_latex, to_markdown, write_table

__all__ = [
    "BASELINE_METHODS", "HEADERS", "KEY_COLUMNS", "METHOD_NOTES", "METHOD_ORDER", "TABLE_CAPTIONS", "Header",
    "accuracy_table", "display_name", "header_of", "latex_escape", "method_sort_key", "scheme_name", "sort_methods",
    "table1", "table1_caption", "table1_depth", "table2", "to_latex", "to_markdown", "write_study_tables",
    "write_table",
]


# ------------------------------------------------------------------------------------------------ builders


def _metric_block(summary: pd.DataFrame, metric: str, prefix: str) -> pd.DataFrame:
    """``dataset, model, method, <prefix>_mean, _ci_low, _ci_high, _n, _n_missing`` of one summary metric."""
    missing = [c for c in (*KEY_COLUMNS, "metric", "n", "n_missing", "mean", "ci_low", "ci_high") if c not in summary]
    if missing:
        raise ValueError(f"summary lacks columns {missing}; pass the 'summary' table of run_statistics")
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"summary has no rows for metric {metric!r}; it has {sorted(summary['metric'].unique())}")
    block = rows[[*KEY_COLUMNS, "mean", "ci_low", "ci_high", "n", "n_missing"]].rename(
        columns={c: f"{prefix}_{c}" for c in ("mean", "ci_low", "ci_high", "n", "n_missing")})
    return block


def _friedman_p(friedman: pd.DataFrame, metric: str, prefix: str) -> pd.DataFrame:
    """``dataset, model, friedman_p_<prefix>`` for one metric (rows absent where it was not tested)."""
    missing = [c for c in ("dataset", "model", "metric", "p") if c not in friedman]
    if missing:
        raise ValueError(f"friedman table lacks columns {missing}; pass the 'friedman' table of run_statistics")
    rows = friedman.loc[friedman["metric"] == metric, ["dataset", "model", "p"]]
    return rows.rename(columns={"p": f"friedman_p_{prefix}"})


def _mark_best(table: pd.DataFrame, prefix: str, direction: str, baselines: Sequence[str]) -> pd.Series:
    """True on the row(s) with the best ``<prefix>_mean`` of each (dataset, model), baselines not eligible."""
    eligible = ~table["method"].isin(list(baselines)) & np.isfinite(table[f"{prefix}_mean"].to_numpy(float))
    values = table[f"{prefix}_mean"].where(eligible)
    best = values.groupby([table["dataset"], table["model"]]).transform("max" if direction == "higher" else "min")
    return (eligible & (values == best)).astype(bool)


def _sorted_rows(table: pd.DataFrame) -> pd.DataFrame:
    order = table["method"].map(lambda m: method_sort_key(m)[0])
    return (table.assign(_order=order)
            .sort_values(["dataset", "model", "_order", "method"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def _method_table(summary: pd.DataFrame, friedman: pd.DataFrame, quantities: Sequence[tuple[str, str]],
                  baselines: Sequence[str]) -> pd.DataFrame:
    """Join the summary blocks and Friedman p-values of ``quantities`` = [(metric, prefix)]; mark the best."""
    table: pd.DataFrame | None = None
    for metric, prefix in quantities:
        block = _metric_block(summary, metric, prefix)
        table = block if table is None else table.merge(block, on=list(KEY_COLUMNS), how="outer")
    assert table is not None
    for metric, prefix in quantities:
        table = table.merge(_friedman_p(friedman, metric, prefix), on=["dataset", "model"], how="left")
    table = _sorted_rows(table)
    for _, prefix in quantities:
        header = header_of(prefix)
        table[f"best_{prefix}"] = _mark_best(table, prefix, (header.direction if header else None) or "higher",
                                             baselines)
    return table


def table1_depth(summary: pd.DataFrame, friedman: pd.DataFrame, *, curve: str = "depth_rmse",
                 baselines: Sequence[str] = BASELINE_METHODS) -> pd.DataFrame:
    """The secondary perturbation table: MoRF AUC, LeRF AUC and their gap of the change of the *whole* predicted
    map (whatever the explained scalar), per dataset x model x method, under the primary removal scheme.

    Args:
        summary: the ``summary`` table of :func:`depthxai.stats.run.run_statistics` (it must contain
            ``morf_auc_<curve>``, ``lerf_auc_<curve>`` and the derived ``gap_auc_<curve>``).
        friedman: its ``friedman`` table (p-values across methods per dataset, model and metric).
        curve: the perturbation curve; default ``depth_rmse``, the RMSE (metres) between the depth predicted
            for the perturbed and for the clean image.
        baselines: methods shown but never marked best (the random rankings are references, not contenders).

    Returns:
        One row per (dataset, model, method), methods in :data:`METHOD_ORDER`: ``n`` (images), then for
        ``q`` in ``morf, lerf, gap``: ``q_mean, q_ci_low, q_ci_high`` (mean over images and its bootstrap CI),
        ``q_n_missing``, ``friedman_p_q`` and ``best_q`` (highest MoRF, lowest LeRF, highest gap per
        dataset x model; ties all marked).
    """
    quantities = [(f"morf_auc_{curve}", "morf"), (f"lerf_auc_{curve}", "lerf"), (f"gap_auc_{curve}", "gap")]
    table = _method_table(summary, friedman, quantities, baselines)
    table = table.rename(columns={"morf_n": "n"}).drop(columns=["lerf_n", "gap_n"])
    columns = [*KEY_COLUMNS, "n"]
    for prefix in ("morf", "lerf", "gap"):
        columns += [f"{prefix}_mean", f"{prefix}_ci_low", f"{prefix}_ci_high"]
    columns += [f"{p}_n_missing" for p in ("morf", "lerf", "gap")]
    columns += [f"friedman_p_{p}" for p in ("morf", "lerf", "gap")] + [f"best_{p}" for p in ("morf", "lerf", "gap")]
    return table[columns]


def table1(summary: pd.DataFrame, friedman: pd.DataFrame, paired: pd.DataFrame, *, curve: str = "target_change",
           primary_scheme: str = "pixel", baselines: Sequence[str] = BASELINE_METHODS,
           notes: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 1, perturbation: the MoRF - LeRF gap of the change of the explained scalar under every removal scheme,
    each method's paired difference to the reference baseline, and the primary scheme's MoRF and LeRF AUCs.

    Args:
        summary, friedman: tables of :func:`depthxai.stats.run.run_statistics` (with ``gap_auc_<curve>`` and its
            ``@<scheme>`` variants).
        paired: its ``paired`` table (:func:`depthxai.stats.run.paired_differences`).
        curve: the perturbation curve (default ``target_change``: ``|t(x~) - t(x)| / t(x)``).
        primary_scheme: the display name of the unsuffixed (primary) scheme.
        baselines: methods shown but never marked best.
        notes: ``{method: note}`` shown in a ``note`` column (default :data:`METHOD_NOTES`).

    Returns:
        One row per (dataset, model, method): ``n``; for every scheme ``s`` (primary first) ``gap_<s>_mean, _ci_low,
        _ci_high`` (mean over images, bootstrap CI), ``delta_<s>_mean, _ci_low, _ci_high`` (mean paired difference
        to the baseline; its CI: BCa over images, or a two-level bootstrap over training seeds and images, as
        ``delta_<s>_ci_method`` says; empty for the baseline itself), ``friedman_p_gap_<s>`` and ``best_gap_<s>``;
        then ``morf_target`` and ``lerf_target`` of the primary scheme; and ``note``.
    """
    gaps = sorted((m for m in set(summary["metric"]) if m == f"gap_auc_{curve}" or m.startswith(f"gap_auc_{curve}@")),
                  key=lambda m: ("@" in m, m))
    if not gaps:
        raise ValueError(f"summary has no rows for metric 'gap_auc_{curve}'; "
                         f"it has {sorted(summary['metric'].unique())}")
    schemes = [scheme_name(m, primary_scheme) for m in gaps]
    quantities = [(m, f"gap_{s}") for m, s in zip(gaps, schemes)]
    quantities += [(f"morf_auc_{curve}", "morf_target"), (f"lerf_auc_{curve}", "lerf_target")]
    table = _method_table(summary, friedman, quantities, baselines)
    table = table.rename(columns={f"gap_{schemes[0]}_n": "n"})
    for metric, scheme in zip(gaps, schemes):
        rows = paired[paired["metric"] == metric][["dataset", "model", "method", "mean_difference", "ci_low", "ci_high",
                                                   "ci_method"]]
        rows = rows.rename(columns={"mean_difference": f"delta_{scheme}_mean", "ci_low": f"delta_{scheme}_ci_low",
                                    "ci_high": f"delta_{scheme}_ci_high", "ci_method": f"delta_{scheme}_ci_method"})
        table = table.merge(rows, on=list(KEY_COLUMNS), how="left")
        table[f"delta_{scheme}_ci_method"] = table[f"delta_{scheme}_ci_method"].fillna("")
    notes = METHOD_NOTES if notes is None else notes
    table["note"] = table["method"].map(lambda m: notes.get(m, ""))
    columns = [*KEY_COLUMNS, "n"]
    for scheme in schemes:
        for q in (f"gap_{scheme}", f"delta_{scheme}"):
            columns += [f"{q}_mean", f"{q}_ci_low", f"{q}_ci_high"]
    for q in ("morf_target", "lerf_target"):
        columns += [f"{q}_mean", f"{q}_ci_low", f"{q}_ci_high"]
    columns += [f"friedman_p_gap_{s}" for s in schemes] + [f"best_gap_{s}" for s in schemes]
    columns += [f"delta_{s}_ci_method" for s in schemes] + ["note"]
    return _sorted_rows(table[columns])


def table2(summary: pd.DataFrame, friedman: pd.DataFrame, *, fidelity: str = "attribution_fidelity",
           infidelity: str = "infidelity", baselines: Sequence[str] = BASELINE_METHODS) -> pd.DataFrame:
    """Table 2: Attribution Fidelity and Infidelity per dataset x model x method, with the Friedman p-values.

    Infidelity's first-order model needs signed maps: a method whose maps have no sign (rollout, learned masks,
    |gradient|) is scored under ``<infidelity>_unsigned`` by the evaluation; its value is shown, but
    ``infidelity_comparable`` is false, it is never marked best, and the Friedman test of the column covers the
    comparable (signed) methods only.

    Args:
        summary, friedman: tables of :func:`depthxai.stats.run.run_statistics`.
        fidelity, infidelity: the metric names.
        baselines: methods never marked best.

    Returns:
        One row per (dataset, model, method): ``n`` (images with a finite Attribution Fidelity),
        ``fidelity_n_missing`` (images where it is undefined, e.g. a constant map), ``constant_maps_n_missing``
        (constant maps, from the evaluation's ``constant_map`` flag; shown only where there are any), ``fidelity_mean,
        fidelity_ci_low, fidelity_ci_high``, the same for ``infidelity``, ``infidelity_comparable``,
        ``friedman_p_fidelity``, ``friedman_p_infidelity``, ``best_fidelity`` (highest) and ``best_infidelity``
        (lowest among the comparable methods), and ``note``.
    """
    unsigned = f"{infidelity}_unsigned"
    merged = summary.copy()
    comparable = (merged[merged["metric"] == infidelity][["dataset", "model", "method"]]
                  .assign(infidelity_comparable=True))
    merged.loc[merged["metric"] == unsigned, "metric"] = infidelity
    table = _method_table(merged, friedman, [(fidelity, "fidelity"), (infidelity, "infidelity")], baselines)
    table = table.merge(comparable, on=list(KEY_COLUMNS), how="left")
    table["infidelity_comparable"] = table["infidelity_comparable"].fillna(False).astype(bool)
    table["best_infidelity"] = table["best_infidelity"] & False
    eligible = table["infidelity_comparable"] & ~table["method"].isin(list(baselines))
    values = table["infidelity_mean"].where(eligible)
    lowest = values.groupby([table["dataset"], table["model"]]).transform("min")
    table["best_infidelity"] = (eligible & (values == lowest)).astype(bool)
    table["note"] = np.where(table["infidelity_comparable"], "",
                             "Infidelity not comparable: the map has no sign (first-order model needs one)")
    constant = summary[summary["metric"] == "constant_map"]
    counts = (constant["mean"] * constant["n"]).round().astype(int).rename("constant_maps_n_missing")
    table = table.merge(pd.concat([constant[list(KEY_COLUMNS)], counts], axis=1), on=list(KEY_COLUMNS), how="left")
    table["constant_maps_n_missing"] = table["constant_maps_n_missing"].fillna(0).astype(int)
    table = table.rename(columns={"fidelity_n": "n"})
    return table[[*KEY_COLUMNS, "n", "fidelity_n_missing", "constant_maps_n_missing", "fidelity_mean",
                  "fidelity_ci_low", "fidelity_ci_high",
                  "infidelity_mean", "infidelity_ci_low", "infidelity_ci_high", "infidelity_comparable",
                  "friedman_p_fidelity", "friedman_p_infidelity", "best_fidelity", "best_infidelity", "note"]]


def accuracy_table(accuracy: pd.DataFrame, *, metrics: Sequence[str] = ("abs_rel", "rmse", "delta1")) -> pd.DataFrame:
    """Depth accuracy of each model: per (dataset, model) the mean of each metric over the images.

    Args:
        accuracy: tidy per-image accuracy, columns ``dataset, model, image_id, metric, value``
            (the prediction stage's table; NaN values are left out of the means).
        metrics: which metrics, in column order.

    Returns:
        Columns ``dataset, model, n`` (images scored: the largest count of finite values over ``metrics``)
        and ``<metric>_mean`` for each metric, sorted by dataset and model.
    """
    missing = [c for c in ("dataset", "model", "image_id", "metric", "value") if c not in accuracy]
    if missing:
        raise ValueError(f"accuracy table lacks columns {missing}; have {list(accuracy.columns)}")
    absent = [m for m in metrics if m not in set(accuracy["metric"])]
    if absent:
        raise ValueError(f"accuracy table has no rows for {absent}; it has {sorted(accuracy['metric'].unique())}")
    rows = accuracy[accuracy["metric"].isin(list(metrics))].copy()
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    grouped = rows.groupby(["dataset", "model", "metric"], sort=True)["value"]
    means = grouped.mean().unstack("metric")
    counts = grouped.count().unstack("metric")
    table = pd.DataFrame({"n": counts[list(metrics)].max(axis=1).astype(int)})
    for metric in metrics:
        table[f"{metric}_mean"] = means[metric].astype(float)
    return table.reset_index()


# ------------------------------------------------------------------------------------------------ the study's tables


def table1_caption(table: pd.DataFrame, baseline: str = "random_smooth") -> str:
    """Table 1's caption, naming the removal schemes and the kind of interval of the paired differences."""
    schemes = [c[len("gap_"):-len("_mean")] for c in table.columns if c.startswith("gap_") and c.endswith("_mean")]
    ci_methods = sorted({str(v) for c in table.columns if c.endswith("_ci_method") for v in table[c] if str(v)})
    return ("Table 1: perturbation test on the explained scalar t (the target the maps explain). MoRF − LeRF: "
            "the area between the curves of |t(perturbed) − t(clean)| / t(clean) when the most and when the least "
            "relevant pixels are removed first (higher is better), under each removal scheme ("
            + ", ".join(schemes) + "; the first is primary). Δ: the paired difference to the smoothness-matched "
            f"random baseline ({display_name('method', baseline)}) on the same images, 95% CI: "
            + ("; ".join(ci_methods) if ci_methods else "none") + ". Mean and 95% bootstrap CI over test images; "
            "best explanation method in bold; MoRF and LeRF AUCs of the primary scheme. The explainer was trained on "
            "the deletion objective of the primary scheme: compare it under the other schemes.")


TABLE_CAPTIONS = {
    "table1_depth": ("Secondary perturbation table: area under the MoRF and LeRF curves of the RMSE between the whole "
                     "predicted depth maps of the perturbed and the unperturbed image (m), whatever the explained "
                     "scalar, primary removal scheme; mean and 95% bootstrap CI over test images; MoRF higher and LeRF "
                     "lower is better; best method in bold."),
    "table2": ("Table 2: Attribution Fidelity (higher is better) and Infidelity (lower is better), mean and 95% "
               "bootstrap CI over test images, with the Friedman test across methods. † Infidelity not comparable: "
               "the map has no sign, and Infidelity's first-order model needs one (its Friedman test covers the "
               "signed maps only)."),
    "accuracy": "Depth accuracy of each model on the test split (mean over images; official protocol).",
}


def write_study_tables(summary: pd.DataFrame, friedman: pd.DataFrame, paired: pd.DataFrame, accuracy: pd.DataFrame,
                       out_dir: str | os.PathLike[str], *, baseline: str = "random_smooth") -> list[Path]:
    """Write Table 1, its secondary whole-map variant, Table 2 and the accuracy table (CSV, Markdown, LaTeX).

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    first = table1(summary, friedman, paired)
    paths = write_table(first, out / "table1", table1_caption(first, baseline))
    paths += write_table(table1_depth(summary, friedman), out / "table1_depth", TABLE_CAPTIONS["table1_depth"])
    paths += write_table(table2(summary, friedman), out / "table2", TABLE_CAPTIONS["table2"])
    paths += write_table(accuracy_table(accuracy), out / "accuracy", TABLE_CAPTIONS["accuracy"])
    return paths
