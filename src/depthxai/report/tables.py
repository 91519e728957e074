"""The paper's tables from the statistics stage: Table 1 (perturbation), Table 2 (Attribution Fidelity and
Infidelity) and the depth-accuracy table of the models.

A table is built as a tidy, full-precision data frame (one row per dataset x model [x method]) and written
by :func:`write_table` three ways: ``.csv`` (every column at full precision, machine-readable), ``.md``
(rounded, with a caption line) and ``.tex`` (booktabs). Both writers are our own: ``DataFrame.to_latex``
needs jinja2 in pandas >= 2 and ``DataFrame.to_markdown`` needs tabulate, neither of which the package
depends on. The rendered forms follow column-name conventions:

* ``dataset``, ``model``, ``method``: key columns, shown with display names; repeats within a block are blanked.
* ``<q>_mean`` with ``<q>_ci_low`` / ``<q>_ci_high``: one cell ``mean [low, high]``; bold where ``best_<q>`` is true.
* ``friedman_p_<q>``: the Friedman p-value of quantity ``<q>``, constant within a (dataset, model) block and
  shown on the block's first row.
* ``n``, ``<q>_n``, ``<q>_n_missing``: counts (a missing-count column that is all zero is not rendered);
  other float columns: numbers.

Numbers are rounded per column to three significant digits of the column's median magnitude.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.fileio import atomic_path, write_text

KEY_COLUMNS = ("dataset", "model", "method")

#: Canonical order of methods in tables and legends (others follow alphabetically); ``random`` is the baseline.
METHOD_ORDER = ("saliency", "ig", "rollout", "explainer", "random_smooth", "random")
BASELINE_METHODS = ("random", "random_smooth")
#: Methods whose rows carry a note in Table 1 (why their numbers need care).
METHOD_NOTES = {"explainer": "trained on the deletion objective (pixel removal, mean colour)"}

_DISPLAY: dict[str, dict[str, str]] = {
    "method": {"saliency": "Saliency", "ig": "IG", "rollout": "Rollout", "explainer": "Explainer",
               "random": "Random", "random_smooth": "Random (smooth)", "oracle": "Oracle (the depth)"},
    "dataset": {"nyu": "NYU Depth v2", "kitti": "KITTI", "synthindoor": "SynthIndoor", "synthroad": "SynthRoad"},
    "arch": {"meter": "METER", "pixelformer": "PixelFormer"},
}


def display_name(kind: str, value: str) -> str:
    """Human-readable name of a ``method``, ``dataset`` or ``model`` id (unknown ids are returned as they are).

    Models ``<arch>_<variant>`` become e.g. ``METER-XXS`` and ``PixelFormer-nano07``.
    """
    value = str(value)
    if kind == "model":
        arch, _, variant = value.partition("_")
        if arch in _DISPLAY["arch"] and variant:
            return f"{_DISPLAY['arch'][arch]}-{variant.upper() if arch == 'meter' else variant}"
        return value
    return _DISPLAY.get(kind, {}).get(value, value)


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting methods in :data:`METHOD_ORDER`, unknown ones after the explanation methods, the baselines
    last."""
    if method in METHOD_ORDER:
        return (METHOD_ORDER.index(method) + (1 if method in BASELINE_METHODS else 0), method)
    return (METHOD_ORDER.index("explainer") + 1, method)


def sort_methods(methods: Sequence[str]) -> list[str]:
    """Unique ``methods`` in :func:`method_sort_key` order."""
    return sorted(set(methods), key=method_sort_key)


@dataclass(frozen=True)
class Header:
    """How a quantity is labelled: ``label`` (Markdown), ``latex`` (LaTeX, already escaped; default: the escaped
    label), ``short`` (in the p-value columns' headers) and which ``direction`` is better (``higher``/``lower``)."""

    label: str
    short: str
    direction: str | None = None
    latex: str | None = None


HEADERS: dict[str, Header] = {
    "dataset": Header("Dataset", "Dataset"),
    "model": Header("Model", "Model"),
    "method": Header("Method", "Method"),
    "n": Header("n", "n"),
    "morf": Header("MoRF AUC (m)", "MoRF", "higher"),
    "lerf": Header("LeRF AUC (m)", "LeRF", "lower"),
    "gap": Header("MoRF − LeRF (m)", "gap", "higher", latex="MoRF $-$ LeRF (m)"),
    "fidelity": Header("Attribution Fidelity", "AF", "higher"),
    "fidelity_n_missing": Header("AF n/a", "AF n/a"),
    "constant_maps_n_missing": Header("constant maps", "constant"),
    "infidelity": Header("Infidelity", "Inf.", "lower"),
    "infidelity_comparable": Header("Infidelity comparable", "comparable"),
    "note": Header("Note", "Note"),
    "morf_target": Header("MoRF AUC (rel.)", "MoRF", "higher"),
    "lerf_target": Header("LeRF AUC (rel.)", "LeRF", "lower"),
    "abs_rel": Header("AbsRel", "AbsRel", "lower"),
    "sq_rel": Header("SqRel", "SqRel", "lower"),
    "rmse": Header("RMSE (m)", "RMSE", "lower"),
    "rmse_log": Header("RMSE log", "RMSE log", "lower"),
    "log10": Header("log10", "log10", "lower"),
    "silog": Header("SILog", "SILog", "lower"),
    "delta1": Header("δ1", "δ1", "higher", latex=r"$\delta_1$"),
    "delta2": Header("δ2", "δ2", "higher", latex=r"$\delta_2$"),
    "delta3": Header("δ3", "δ3", "higher", latex=r"$\delta_3$"),
    # evaluation science (depthxai.report.science)
    "spearman_randomised": Header("Spearman, randomised", "ρ rand.", "lower", latex=r"Spearman, randomised"),
    "ssim_randomised": Header("SSIM, randomised", "SSIM rand.", "lower"),
    "fidelity_original": Header("AF, trained", "AF"),
    "fidelity_randomised": Header("AF, randomised", "AF rand."),
    "focus": Header("Mosaic Focus", "Focus", "higher"),
    "rank_precision": Header("Rank precision", "prec.", "higher"),
    "mass_precision": Header("Mass precision (Fresz)", "mass prec.", "higher"),
    "shift_mass_ratio": Header("Object-shift mass ratio", "shift", "higher"),
    "shift_n": Header("pairs", "pairs"),
    "alpha": Header("Krippendorff α", "α", "higher", latex=r"Krippendorff $\alpha$"),
    "alpha_all": Header("α, all methods (incl. baselines)", "α all", latex=r"$\alpha$, all methods (incl. baselines)"),
    "fidelity_mosaic": Header("AF, mosaics", "AF mosaic"),
    "fidelity_shift": Header("AF, object shift", "AF shift"),
    "icc_analysis_seed": Header("ICC(2,1) over analysis seeds, median over methods", "ICC seed", "higher"),
    "icc_training_seed": Header("ICC(2,1) over training seeds, median over methods", "ICC train", "higher"),
    "n_images": Header("images", "images"),
    "metric": Header("Metric", "Metric"),
}


def scheme_name(metric: str, primary: str = "pixel") -> str:
    """The removal scheme of a metric name: the text after ``@``, or ``primary`` for unsuffixed metrics."""
    return metric.split("@", 1)[1] if "@" in metric else primary


def header_of(name: str) -> Header | None:
    """The :class:`Header` of a displayed quantity, including the per-scheme ones of Table 1 (``gap_<scheme>``:
    MoRF - LeRF of the target change; ``delta_<scheme>``: its paired difference to the reference baseline)."""
    if name in HEADERS:
        return HEADERS[name]
    if name.startswith("gap_"):
        scheme = name[len("gap_"):]
        return Header(f"MoRF − LeRF, {scheme}", f"gap {scheme}", "higher", latex=f"MoRF $-$ LeRF, {latex_escape(scheme)}")
    if name.startswith("delta_"):
        scheme = name[len("delta_"):]
        return Header(f"Δ gap vs baseline, {scheme}", f"Δ {scheme}", "higher",
                      latex=f"$\\Delta$ gap vs baseline, {latex_escape(scheme)}")
    return None


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
        raise ValueError(f"summary has no rows for metric 'gap_auc_{curve}'; it has {sorted(summary['metric'].unique())}")
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
    comparable = merged[merged["metric"] == infidelity][["dataset", "model", "method"]].assign(infidelity_comparable=True)
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


# ------------------------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class _Column:
    """One displayed column: ``kind`` in key/estimate/p/count/number/text, the quantity name and its source columns."""

    kind: str
    name: str
    sources: tuple[str, ...]


def _layout(table: pd.DataFrame) -> list[_Column]:
    columns = list(table.columns)
    layout = []
    for column in columns:
        if column in KEY_COLUMNS:
            layout.append(_Column("key", column, (column,)))
        elif column.startswith("best_") or column.endswith(("_ci_low", "_ci_high", "_comparable", "_ci_method")):
            continue  # shown through their estimate (bold, interval, dagger) or stated in the caption
        elif column.startswith("friedman_p_"):
            layout.append(_Column("p", column[len("friedman_p_"):], (column,)))
        elif column.endswith("_mean"):
            name = column[: -len("_mean")]
            ci = (f"{name}_ci_low", f"{name}_ci_high")
            layout.append(_Column("estimate", name, (column, *ci) if all(c in columns for c in ci) else (column,)))
        elif pd.api.types.is_bool_dtype(table[column]):
            layout.append(_Column("text", column, (column,)))
        elif column.endswith("_n_missing") and not (table[column].fillna(0) != 0).any():
            continue  # nothing missing: the column would only repeat zeros (the CSV keeps it)
        elif pd.api.types.is_integer_dtype(table[column]) or column == "n" or column.endswith(("_n", "_n_missing")):
            layout.append(_Column("count", column, (column,)))
        elif pd.api.types.is_float_dtype(table[column]):
            layout.append(_Column("number", column, (column,)))
        else:
            layout.append(_Column("text", column, (column,)))
    return layout


def _decimals(values: np.ndarray, significant: int = 3) -> int:
    """Decimals that give ``significant`` digits to the median magnitude of the finite non-zero ``values``."""
    finite = np.abs(values[np.isfinite(values)])
    finite = finite[finite > 0]
    if finite.size == 0:
        return significant
    exponent = math.floor(math.log10(float(np.median(finite))))
    return int(min(6, max(0, significant - 1 - exponent)))


def _number(x: float, decimals: int, *, latex: bool) -> str:
    if not np.isfinite(x):
        return "--" if latex else "–"
    text = f"{x:.{decimals}f}"
    if text.startswith("-"):
        text = ("$-$" if latex else "−") + text[1:]
    return text


def _p_value(p: float, *, latex: bool) -> str:
    if not np.isfinite(p):
        return "--" if latex else "–"
    if p < 0.001:
        return "$<$0.001" if latex else "<0.001"
    return f"{p:.3f}"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``\\ & % $ # _ { } ~ ^``) in plain text."""
    replacements = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "−": "$-$",
                    "–": "--", "δ": r"$\delta$", "ρ": r"$\rho$", "Δ": r"$\Delta$", "†": r"$^\dagger$"}
    return "".join(replacements.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _header(column: _Column, *, latex: bool) -> str:
    header = header_of(column.name)
    if column.kind == "p":
        short = header.short if header else column.name
        return f"Friedman $p$ ({latex_escape(short)})" if latex else f"Friedman p ({short})"
    if header is None:
        return latex_escape(column.name) if latex else column.name
    label = header.latex if (latex and header.latex) else (latex_escape(header.label) if latex else header.label)
    if header.direction:
        label += (r" $\uparrow$" if header.direction == "higher" else r" $\downarrow$") if latex else (
            " ↑" if header.direction == "higher" else " ↓")
    return label


def _cells(table: pd.DataFrame, layout: list[_Column], *, latex: bool) -> list[list[str]]:
    """The rendered body: one list of cell strings per row, repeats of keys and block constants blanked."""
    block = _block_keys(table)
    # Decimals per column and block (e.g. dataset x model): one metric can span orders of magnitude across
    # datasets (Infidelity: 3e-4 indoors, 26 on roads), and a column-wide precision would print zeros.
    group_of = [tuple(row[k] for k in block) for _, row in table.iterrows()]
    decimals = {(c.name, group): _decimals(table.loc[[g == group for g in group_of], list(c.sources)]
                                           .to_numpy(float).ravel())
                for c in layout if c.kind in ("estimate", "number") for group in set(group_of)}
    body = []
    previous: tuple | None = None
    for _, row in table.iterrows():
        key = tuple(row[k] for k in block)
        new_block = key != previous
        cells = []
        for column in layout:
            value = row[column.sources[0]]
            if column.kind == "key":
                prefix = tuple(row[k] for k in block[: block.index(column.name) + 1]) if column.name in block else None
                shown = prefix is None or previous is None or prefix != previous[: len(prefix)]
                text = display_name(column.name, value) if shown else ""
                cells.append(latex_escape(text) if latex else _markdown_escape(text))
            elif column.kind == "p":
                cells.append(_p_value(float(value), latex=latex) if new_block else "")
            elif column.kind == "count":
                cells.append(str(int(value)) if pd.notna(value) else ("--" if latex else "–"))
            elif column.kind in ("estimate", "number"):
                d = decimals[column.name, key]
                text = _number(float(value), d, latex=latex)
                if column.kind == "estimate" and len(column.sources) == 3:
                    low, high = float(row[column.sources[1]]), float(row[column.sources[2]])
                    if np.isfinite(low) and np.isfinite(high):
                        interval = f"[{_number(low, d, latex=latex)}, {_number(high, d, latex=latex)}]"
                        text += rf" {{\scriptsize {interval}}}" if latex else f" {interval}"
                best = f"best_{column.name}"
                if best in table.columns and bool(row[best]):
                    text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
                comparable = f"{column.name}_comparable"
                if comparable in table.columns and not bool(row[comparable]) and np.isfinite(float(value)):
                    text += r"$^\dagger$" if latex else " †"  # the note column says why
                cells.append(text)
            else:
                cells.append(latex_escape(str(value)) if latex else _markdown_escape(str(value)))
        body.append(cells)
        previous = key
    return body


def _block_keys(table: pd.DataFrame) -> list[str]:
    """The key columns that define a block: all present keys but the last (dataset, model for a method table)."""
    return [k for k in KEY_COLUMNS if k in table.columns][:-1]


def _block_starts(table: pd.DataFrame) -> list[bool]:
    """Whether each row starts a new block (see :func:`_block_keys`; a rule is drawn above it in LaTeX)."""
    block = _block_keys(table)
    keys = [tuple(r) for r in table[block].itertuples(index=False)] if block else [()] * len(table)
    return [i > 0 and keys[i] != keys[i - 1] for i in range(len(keys))]


def to_markdown(table: pd.DataFrame, caption: str) -> str:
    """A pipe table with a ``Table: caption`` line (pandoc's caption syntax) before it."""
    layout = _layout(table)
    headers = [_markdown_escape(_header(c, latex=False)) for c in layout]
    align = [":---" if c.kind in ("key", "text") else "---:" for c in layout]
    lines = [f"Table: {caption}", "", "| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, layout, latex=False)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs ``table`` float (needs ``\\usepackage{booktabs}``); text is escaped, best values are bold."""
    layout = _layout(table)
    spec = "".join("l" if c.kind in ("key", "text") else "r" for c in layout)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_header(c, latex=True) for c in layout) + r" \\",
        r"\midrule",
    ]
    for starts, cells in zip(_block_starts(table), _cells(table, layout, latex=True)):
        if starts:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: str | os.PathLike[str], caption: str) -> list[Path]:
    """Write ``stem.csv`` (full precision), ``stem.md`` and ``stem.tex`` (rounded, captioned), each atomically.

    Args:
        table: a table from :func:`table1`, :func:`table2`, :func:`accuracy_table` (or any frame following the
            column conventions of this module).
        stem: output path without suffix, e.g. ``results/tables/table1``.
        caption: one sentence or more; it becomes the Markdown caption line and the LaTeX ``\\caption``.

    Returns:
        The three paths written.
    """
    stem = Path(stem)
    csv_path, md_path, tex_path = (stem.with_name(stem.name + suffix) for suffix in (".csv", ".md", ".tex"))
    with atomic_path(csv_path) as tmp:
        # Shortest round-trip representation of every float: exact and byte-stable across reruns.
        table.to_csv(tmp, index=False, lineterminator="\n")
    write_text(md_path, to_markdown(table, caption))
    write_text(tex_path, to_latex(table, caption, label="tab:" + stem.name.replace("_", "-")))
    return [csv_path, md_path, tex_path]


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
