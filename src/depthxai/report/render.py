"""Rendering a table: Markdown (pipe table with a pandoc caption), LaTeX (booktabs) and full-precision CSV.

A table is a tidy, full-precision data frame; its columns are rendered by naming convention:

* ``dataset``, ``model``, ``method``: key columns, shown with display names; repeats within a block are blanked.
* ``<q>_mean`` with ``<q>_ci_low`` / ``<q>_ci_high``: one cell ``mean [low, high]``; bold where ``best_<q>`` is true,
  with a dagger where ``<q>_comparable`` is false.
* ``friedman_p_<q>``: the Friedman p-value of quantity ``<q>``, constant within a (dataset, model) block and
  shown on the block's first row.
* ``n``, ``<q>_n``, ``<q>_n_missing``: counts (a missing-count column that is all zero is not rendered);
  other float columns: numbers.

Numbers are rounded per column and block to three significant digits of the median magnitude. Both writers are our
own: ``DataFrame.to_latex`` needs jinja2 in pandas >= 2 and ``DataFrame.to_markdown`` needs tabulate, neither of
which the package depends on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.fileio import atomic_path, write_text
from depthxai.report.labels import KEY_COLUMNS, display_name, header_of, latex_escape

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
