"""Tables of the evaluation-science stage: randomisation sanity check, localisation controls, metric reliability.

Each table is a compact summary of a tidy table written by the workflow (means over images; the full per-image
rows stay in ``results/science/``), rendered by :func:`depthxai.report.tables.write_table` as CSV, Markdown
and LaTeX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from depthxai.report.labels import method_sort_key
from depthxai.report.render import write_table

KEYS = ["dataset", "model", "method"]


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    order = table["method"].map(method_sort_key) if "method" in table else None
    if order is None:
        return table.sort_values([c for c in ("dataset", "model", "metric") if c in table]).reset_index(drop=True)
    return (table.assign(_order=order).sort_values(["dataset", "model", "_order"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def randomisation_table(sanity: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, method): medians over images of the similarity of the maps of the fully randomised
    model to the original maps (Spearman of |map|, SSIM), and Attribution Fidelity before and after."""
    last = sanity["step"].astype(int) == sanity.groupby(["dataset", "model"])["step"].transform("max").astype(int)
    first = sanity["step"].astype(int) == 0
    rows = []
    for key, group in sanity.groupby(KEYS, sort=True):
        final, start = group[last.loc[group.index]], group[first.loc[group.index]]

        def median(frame: pd.DataFrame, metric: str) -> float:
            values = frame.loc[frame["metric"] == metric, "value"].astype(float)
            values = values[np.isfinite(values)]
            return float(values.median()) if len(values) else float("nan")

        rows.append({**dict(zip(KEYS, key)), "n": int(group["image_id"].nunique()),
                     "spearman_randomised_mean": median(final, "spearman"),
                     "ssim_randomised_mean": median(final, "ssim"),
                     "fidelity_original_mean": median(start, "attribution_fidelity"),
                     "fidelity_randomised_mean": median(final, "attribution_fidelity")})
    return _sorted(pd.DataFrame(rows))


def _means(table: pd.DataFrame, metrics: dict[str, str], by: list[str]) -> pd.DataFrame:
    rows = []
    for key, group in table.groupby(by, sort=True):
        row = {**dict(zip(by, key)), "n": int(group["image_id"].nunique())}
        for metric, name in metrics.items():
            values = group.loc[group["metric"] == metric, "value"].astype(float)
            row[f"{name}_mean"] = float(values.mean()) if len(values) else float("nan")
        rows.append(row)
    return _sorted(pd.DataFrame(rows))


def localisation_table(localisation: pd.DataFrame, object_shift: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, method, and the oracle whose map is the predicted depth): mosaic Focus and rank precision
    (chance 0.25) and the maps' Attribution Fidelity on the mosaics; where the object-shift control ran, the
    attribution mass on the moved object relative to its area (1 = chance) and the AF there."""
    table = _means(localisation, {"focus": "focus", "precision": "rank_precision", "mass_precision": "mass_precision",
                                  "attribution_fidelity": "fidelity_mosaic"}, KEYS)
    if not object_shift.empty:
        shift = _means(object_shift, {"mass_ratio": "shift_mass_ratio", "attribution_fidelity": "fidelity_shift"},
                       KEYS).rename(columns={"n": "shift_n"})
        table = table.merge(shift, on=KEYS, how="left")
    return table


def reliability_table(alpha: pd.DataFrame, icc: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, metric): Krippendorff's alpha of the method rankings across images, over the explanation
    methods (``alpha_mean``) and over every method, baselines included (``alpha_all_mean``, labelled: a baseline
    that every image ranks last inflates it), and, for each test-retest factor that ran (``icc_<factor>_mean``:
    analysis seed, training seed), the median over methods of the ICC(2,1)."""
    keys = ["dataset", "model", "metric"]
    sets = alpha["methods_set"] if "methods_set" in alpha else pd.Series("explanations", index=alpha.index)
    table = alpha[sets == "explanations"].rename(columns={"alpha": "alpha_mean"})[[*keys, "alpha_mean", "n_images"]]
    every = alpha[sets == "all"].rename(columns={"alpha": "alpha_all_mean"})[[*keys, "alpha_all_mean"]]
    table = table.merge(every, on=keys, how="outer")
    for factor, rows in icc.groupby("factor", sort=True) if not icc.empty else ():
        med = rows.groupby(keys)["icc2_1"].median().rename(f"icc_{factor}_mean").reset_index()
        table = table.merge(med, on=keys, how="left")
    return _sorted(table)


def science_tables(sanity: pd.DataFrame, localisation: pd.DataFrame, object_shift: pd.DataFrame,
                   alpha: pd.DataFrame, icc: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the randomisation, localisation and reliability tables into ``out_dir``; returns the paths."""
    paths = write_table(randomisation_table(sanity), out_dir / "randomisation",
                        "Model-parameter randomisation (cascading, Adebayo et al. 2018): median over images of the "
                        "similarity between the maps of the fully randomised model and the original maps (a faithful "
                        "method is near 0, a model-independent one at 1), and Attribution Fidelity before and after.")
    paths += write_table(localisation_table(localisation, object_shift), out_dir / "localisation",
                         "Localisation ground truth: mosaic Focus (share of |attribution| in the target tile, chance "
                         "0.25), rank precision (top-25% pixels in the tile) and, for synthetic scenes, attribution "
                         "mass on the object moved in depth relative to its area (1 = chance); Attribution Fidelity of "
                         "the same maps on the mosaics and the shifted scenes. Oracle: the map is the predicted depth "
                         "itself (AF = 1 by construction, no localisation).")
    paths += write_table(reliability_table(alpha, icc), out_dir / "reliability",
                         "Reliability of each metric: Krippendorff's alpha (ordinal) of the rankings of the "
                         "explanation methods with images as raters (and over all methods, baselines included, "
                         "which inflates it), and the median over methods of the test-retest ICC(2,1) when the "
                         "analysis seed (attribution and evaluation noise) or the training seed of the model changes.")
    return paths


def write_science_report(sanity: pd.DataFrame, localisation: pd.DataFrame, object_shift: pd.DataFrame,
                         scores: pd.DataFrame, spearman: pd.DataFrame, alpha: pd.DataFrame, icc: pd.DataFrame,
                         figures_dir: str | Path, tables_dir: str | Path,
                         formats: tuple[str, ...] | list[str] = ("png", "pdf")) -> list[Path]:
    """The science stage's figures (randomisation, metric violins, inter-method correlation heatmaps of every
    method, baselines included) and tables (:func:`science_tables`); returns the paths written."""
    from depthxai.report.figures import (
        figure_method_correlation,
        figure_metric_violins,
        figure_randomisation,
    )

    out = Path(figures_dir)
    paths = figure_randomisation(sanity, out / "randomisation", formats=formats)
    paths += figure_metric_violins(scores, out / "violins", formats=formats)
    if "methods_set" in spearman:
        spearman = spearman[spearman["methods_set"] == "all"].drop(columns="methods_set")
    paths += figure_method_correlation(spearman, out / "method_correlation", formats=formats)
    return paths + science_tables(sanity, localisation, object_shift, alpha, icc, Path(tables_dir))
