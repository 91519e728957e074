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
METHOD_ORDER = ("saliency", "ig", "rollout", "explainer", "random")
BASELINE_METHODS = ("random",)

_DISPLAY: dict[str, dict[str, str]] = {
    "method": {"saliency": "Saliency", "ig": "IG", "rollout": "Rollout", "explainer": "Explainer",
               "random": "Random"},
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
    """Sort key putting methods in :data:`METHOD_ORDER`, unknown ones after them alphabetically, ``random`` last."""
    if method in BASELINE_METHODS:
        return (len(METHOD_ORDER) + 1, method)
    return (METHOD_ORDER.index(method), method) if method in METHOD_ORDER else (len(METHOD_ORDER), method)


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
    "infidelity": Header("Infidelity", "Inf.", "lower"),
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
    "icc_analysis_seed": Header("ICC(2,1) over analysis seeds, median over methods", "ICC seed", "higher"),
    "icc_training_seed": Header("ICC(2,1) over training seeds, median over methods", "ICC train", "higher"),
    "n_images": Header("images", "images"),
    "metric": Header("Metric", "Metric"),
}


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
        table[f"best_{prefix}"] = _mark_best(table, prefix, HEADERS[prefix].direction or "higher", baselines)
    return table


def table1(summary: pd.DataFrame, friedman: pd.DataFrame, *, curve: str = "depth_rmse",
           baselines: Sequence[str] = BASELINE_METHODS) -> pd.DataFrame:
    """Table 1, perturbation: MoRF AUC, LeRF AUC and their gap of the depth change, per dataset x model x method.

    Args:
        summary: the ``summary`` table of :func:`depthxai.stats.run.run_statistics` (it must contain
            ``morf_auc_<curve>``, ``lerf_auc_<curve>`` and the derived ``gap_auc_<curve>``).
        friedman: its ``friedman`` table (p-values across methods per dataset, model and metric).
        curve: the perturbation curve; default ``depth_rmse``, the RMSE (metres) between the depth predicted
            for the perturbed and for the clean image.
        baselines: methods shown but never marked best (the random ranking is a reference, not a contender).

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


def table2(summary: pd.DataFrame, friedman: pd.DataFrame, *, fidelity: str = "attribution_fidelity",
           infidelity: str = "infidelity", baselines: Sequence[str] = BASELINE_METHODS) -> pd.DataFrame:
    """Table 2: Attribution Fidelity and Infidelity per dataset x model x method, with the Friedman p-values.

    Args:
        summary, friedman: tables of :func:`depthxai.stats.run.run_statistics`.
        fidelity, infidelity: the metric names.
        baselines: methods never marked best.

    Returns:
        One row per (dataset, model, method): ``n`` (images with a finite Attribution Fidelity),
        ``fidelity_n_missing`` (images where it is undefined, e.g. a constant map), ``fidelity_mean,
        fidelity_ci_low, fidelity_ci_high``, the same for ``infidelity``, ``friedman_p_fidelity``,
        ``friedman_p_infidelity``, ``best_fidelity`` (highest) and ``best_infidelity`` (lowest).
    """
    table = _method_table(summary, friedman, [(fidelity, "fidelity"), (infidelity, "infidelity")], baselines)
    table = table.rename(columns={"fidelity_n": "n"})
    return table[[*KEY_COLUMNS, "n", "fidelity_n_missing", "fidelity_mean", "fidelity_ci_low", "fidelity_ci_high",
                  "infidelity_mean", "infidelity_ci_low", "infidelity_ci_high", "friedman_p_fidelity",
                  "friedman_p_infidelity", "best_fidelity", "best_infidelity"]]


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
        elif column.startswith("best_") or column.endswith(("_ci_low", "_ci_high")):
            continue  # shown through their estimate
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
                    "–": "--", "δ": r"$\delta$", "ρ": r"$\rho$"}
    return "".join(replacements.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _header(column: _Column, *, latex: bool) -> str:
    header = HEADERS.get(column.name)
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
