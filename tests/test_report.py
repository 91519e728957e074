"""Tables 1-2, the accuracy table and the figures, on small constructed results.

Tables: the right rows and numbers (against the summary and direct computations), best-method marks, and
well-formed Markdown/LaTeX. Figures: written, decodable at the expected size, byte-identical across runs,
and the Figure 3 disagreement rule marks exactly the constructed disagreeing points.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import DataError
from depthxai.evaluation.panels import QualitativePanel, read_panels, relevance_display, write_panels
from depthxai.evaluation.qualitative import qualitative_panels
from depthxai.fileio import write_npz
from depthxai.models.registry import ModelCard
from depthxai.report import figures
from depthxai.report.tables import (
    accuracy_table,
    display_name,
    latex_escape,
    sort_methods,
    table1,
    table1_depth,
    table2,
    to_latex,
    to_markdown,
    write_table,
)
from depthxai.stats.hypothesis import bootstrap_ci
from depthxai.stats.run import paired_differences, run_statistics

DPI = 40
MODELS = ["meter_xxs", "pixelformer_nano07"]
METHODS = ["saliency", "ig", "rollout", "random"]


def _scores(n_images: int = 10, seed: int = 0) -> pd.DataFrame:
    """Scores for one dataset, two models, four methods with known orderings.

    MoRF: random highest (to check the baseline is never marked best), then rollout > ig > saliency.
    LeRF: ig lowest for meter_xxs, saliency lowest for pixelformer_nano07. Fidelity: saliency best.
    Infidelity: rollout lowest.
    """
    rng = np.random.default_rng(seed)
    morf = {"saliency": 0.2, "ig": 0.3, "rollout": 0.4, "random": 0.9}
    lerf = {"meter_xxs": {"saliency": 0.3, "ig": 0.1, "rollout": 0.4, "random": 0.5},
            "pixelformer_nano07": {"saliency": 0.1, "ig": 0.3, "rollout": 0.4, "random": 0.5}}
    fidelity = {"saliency": 0.8, "ig": 0.5, "rollout": 0.3, "random": 0.0}
    infidelity = {"saliency": 0.02, "ig": 0.03, "rollout": 0.01, "random": 0.05}
    rows = []
    for model in MODELS:
        for method in METHODS:
            for i in range(n_images):
                image = f"img_{i:02d}"
                values = {"morf_auc_depth_rmse": morf[method], "lerf_auc_depth_rmse": lerf[model][method],
                          "attribution_fidelity": fidelity[method], "infidelity": infidelity[method]}
                for metric, centre in values.items():
                    rows.append(("synthindoor", model, method, image, metric, centre + 0.01 * rng.normal()))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


@pytest.fixture(scope="module")
def statistics() -> dict[str, pd.DataFrame]:
    return run_statistics(_scores(), n_resamples=200, seed=0)


# ------------------------------------------------------------------------------------------------ tables


def test_table1_depth_rows_numbers_and_best_marks(statistics) -> None:
    summary, friedman = statistics["summary"], statistics["friedman"]
    table = table1_depth(summary, friedman)
    assert len(table) == 2 * 4
    assert list(table["method"][:4]) == ["saliency", "ig", "rollout", "random"]  # canonical order, baseline last
    assert list(table["model"]) == ["meter_xxs"] * 4 + ["pixelformer_nano07"] * 4

    scores = _scores()
    for row in table.itertuples():
        mine = scores[(scores["model"] == row.model) & (scores["method"] == row.method)]
        morf = np.sort(mine.loc[mine["metric"] == "morf_auc_depth_rmse"].sort_values("image_id")["value"].to_numpy())
        assert row.morf_mean == pytest.approx(morf.mean(), rel=1e-12)
        _, low, high = bootstrap_ci(morf, n_resamples=200, seed=0)
        assert (row.morf_ci_low, row.morf_ci_high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
        m = mine[mine["metric"] == "morf_auc_depth_rmse"].set_index("image_id")["value"]
        lr = mine[mine["metric"] == "lerf_auc_depth_rmse"].set_index("image_id")["value"]
        assert row.gap_mean == pytest.approx((m - lr).mean(), rel=1e-9)
        assert row.n == 10
        p = friedman[(friedman["model"] == row.model) & (friedman["metric"] == "morf_auc_depth_rmse")]["p"].item()
        assert row.friedman_p_morf == p

    best = {(r.model, q): r.method for r in table.itertuples() for q in ("morf", "lerf", "gap")
            if getattr(r, f"best_{q}")}
    # Random has the highest MoRF but is a baseline: rollout is marked.
    assert best[("meter_xxs", "morf")] == "rollout" and best[("pixelformer_nano07", "morf")] == "rollout"
    assert best[("meter_xxs", "lerf")] == "ig" and best[("pixelformer_nano07", "lerf")] == "saliency"
    assert best[("meter_xxs", "gap")] == "ig"  # 0.3 - 0.1 = 0.2 beats 0.0 and -0.1 and 0.0
    assert table[["best_morf", "best_lerf", "best_gap"]].sum().tolist() == [2, 2, 2]

    with_random = table1_depth(summary, friedman, baselines=())
    assert with_random.loc[with_random["best_morf"], "method"].tolist() == ["random", "random"]


def test_table2_and_accuracy_table(statistics) -> None:
    table = table2(statistics["summary"], statistics["friedman"])
    assert len(table) == 8
    assert table.loc[table["best_fidelity"], "method"].tolist() == ["saliency", "saliency"]
    assert table.loc[table["best_infidelity"], "method"].tolist() == ["rollout", "rollout"]
    assert table["infidelity_comparable"].all() and (table["note"] == "").all()
    scores = _scores()
    fid = scores[(scores["model"] == "meter_xxs") & (scores["method"] == "ig")
                 & (scores["metric"] == "attribution_fidelity")]
    row = table[(table["model"] == "meter_xxs") & (table["method"] == "ig")].iloc[0]
    assert row["fidelity_mean"] == pytest.approx(fid["value"].mean(), rel=1e-12)
    matrix = scores[(scores["model"] == "meter_xxs") & (scores["metric"] == "infidelity")].pivot(
        index="image_id", columns="method", values="value")
    assert row["friedman_p_infidelity"] == pytest.approx(stats.friedmanchisquare(*matrix.to_numpy().T).pvalue,
                                                         rel=1e-12)

    rng = np.random.default_rng(1)
    accuracy = pd.DataFrame([("synthindoor", model, f"img_{i}", metric, rng.random())
                             for model in MODELS for i in range(6)
                             for metric in ("abs_rel", "rmse", "delta1", "silog")],
                            columns=["dataset", "model", "image_id", "metric", "value"])
    accuracy.loc[3, "value"] = np.nan
    result = accuracy_table(accuracy)
    assert list(result.columns) == ["dataset", "model", "n", "abs_rel_mean", "rmse_mean", "delta1_mean"]
    expected = accuracy.groupby(["model", "metric"])["value"].mean()
    for row in result.itertuples():
        for metric in ("abs_rel", "rmse", "delta1"):
            assert getattr(row, f"{metric}_mean") == pytest.approx(expected[(row.model, metric)], rel=1e-12)
    assert result["n"].tolist() == [6, 6]
    with pytest.raises(ValueError, match="no rows for"):
        accuracy_table(accuracy, metrics=("abs_rel", "sq_rel"))


def test_table2_marks_the_infidelity_of_unsigned_maps_not_comparable() -> None:
    """Rollout's maps have no sign: the evaluation scores them as infidelity_unsigned; Table 2 shows the value with
    a dagger and a note, never marks it best, and its Friedman test compares the signed maps only."""
    scores = _scores()
    unsigned = (scores["method"] == "rollout") & (scores["metric"] == "infidelity")
    scores.loc[unsigned, "metric"] = "infidelity_unsigned"
    result = run_statistics(scores, n_resamples=100, seed=0)
    table = table2(result["summary"], result["friedman"])
    rollout = table[table["method"] == "rollout"].iloc[0]
    assert not rollout["infidelity_comparable"] and "no sign" in rollout["note"]
    expected = scores[unsigned & (scores["model"] == rollout["model"])]["value"].mean()
    assert rollout["infidelity_mean"] == pytest.approx(expected, rel=1e-12)
    assert table.loc[table["best_infidelity"], "method"].tolist() == ["saliency", "saliency"]  # rollout not eligible
    matrix = scores[(scores["model"] == "meter_xxs") & (scores["metric"] == "infidelity")].pivot(
        index="image_id", columns="method", values="value")
    assert sorted(matrix.columns) == ["ig", "random", "saliency"]
    first = table[table["model"] == "meter_xxs"].iloc[0]
    assert first["friedman_p_infidelity"] == pytest.approx(stats.friedmanchisquare(*matrix.to_numpy().T).pvalue)
    markdown = to_markdown(table, "cap")
    assert sum(" †" in line for line in _table_lines(markdown)) == 2  # rollout's cell, once per model
    assert r"$^\dagger$" in to_latex(table, "cap", "tab:t2")


def _target_scores(n_images: int = 12, seed: int = 3) -> pd.DataFrame:
    """MoRF / LeRF AUCs of the target change under two schemes; ig best under pixel, rollout best under road;
    the baselines flat; the explainer ahead of everything (but noted)."""
    rng = np.random.default_rng(seed)
    gaps = {"pixel": {"saliency": 0.2, "ig": 0.5, "rollout": 0.3, "explainer": 0.9, "random_smooth": 0.0,
                      "random": 0.05},
            "road": {"saliency": 0.1, "ig": 0.2, "rollout": 0.4, "explainer": 0.3, "random_smooth": 0.0,
                     "random": 0.0}}
    rows = []
    for scheme, suffix in (("pixel", ""), ("road", "@road")):
        for method, gap in gaps[scheme].items():
            for i in range(n_images):
                lerf = 0.1 + 0.01 * rng.normal()
                rows.append(("synthindoor", "meter_xxs", method, f"img_{i:02d}", f"morf_auc_target_change{suffix}",
                             lerf + gap + 0.01 * rng.normal()))
                rows.append(("synthindoor", "meter_xxs", method, f"img_{i:02d}", f"lerf_auc_target_change{suffix}",
                             lerf))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"])


def test_table1_gaps_per_scheme_and_paired_differences() -> None:
    result = run_statistics(_target_scores(), n_resamples=200, seed=0)
    table = table1(result["summary"], result["friedman"], result["paired"])
    assert table["method"].tolist() == ["saliency", "ig", "rollout", "explainer", "random_smooth", "random"]
    assert [c for c in table.columns if c.endswith("_mean")] == [
        "gap_pixel_mean", "delta_pixel_mean", "gap_road_mean", "delta_road_mean", "morf_target_mean",
        "lerf_target_mean"]
    rows = table.set_index("method")
    assert rows.loc["ig", "gap_pixel_mean"] == pytest.approx(0.5, abs=0.01)
    assert rows.loc["rollout", "gap_road_mean"] == pytest.approx(0.4, abs=0.01)
    # best among the explanation methods (the explainer competes, noted; the baselines never)
    assert rows.index[rows["best_gap_pixel"]].tolist() == ["explainer"]
    assert rows.index[rows["best_gap_road"]].tolist() == ["rollout"]
    assert "deletion objective" in rows.loc["explainer", "note"] and rows.loc["ig", "note"] == ""
    # the paired differences are those of the stats stage, against random_smooth; none for the baseline itself
    paired = paired_differences(_with_gaps(), n_resamples=200, seed=0).set_index(["metric", "method"])
    assert rows.loc["ig", "delta_road_mean"] == pytest.approx(paired.loc[("gap_auc_target_change@road", "ig"),
                                                                         "mean_difference"], rel=1e-12)
    assert np.isnan(rows.loc["random_smooth", "delta_pixel_mean"])
    assert rows.loc["ig", "delta_pixel_ci_method"] == "BCa over images"
    markdown = to_markdown(table, "cap")
    assert "MoRF − LeRF, pixel" in markdown and "Δ gap vs baseline, road" in markdown
    with pytest.raises(ValueError, match="no rows for metric 'gap_auc_depth_rmse'"):
        table1(result["summary"], result["friedman"], result["paired"], curve="depth_rmse")


def _with_gaps() -> pd.DataFrame:
    from depthxai.stats.run import add_gap_metrics

    return add_gap_metrics(_target_scores())
    with pytest.raises(ValueError, match="no rows for metric"):
        table1_depth(statistics["summary"], statistics["friedman"], curve="gt_rmse")


def _table_lines(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_markdown_and_latex_are_well_formed(statistics, tmp_path) -> None:
    table = table1_depth(statistics["summary"], statistics["friedman"])
    caption = "Perturbation AUCs of the depth_rmse curve (50% removed; mean [95% CI])."
    paths = write_table(table, tmp_path / "table_1", caption)
    assert [p.name for p in paths] == ["table_1.csv", "table_1.md", "table_1.tex"]

    back = pd.read_csv(paths[0])
    pd.testing.assert_frame_equal(back, table, check_dtype=False)  # full precision round trip

    markdown = paths[1].read_text()
    assert markdown.splitlines()[0] == f"Table: {caption}"
    lines = _table_lines(markdown)
    assert len(lines) == 2 + len(table)
    assert len({line.count(" | ") for line in lines}) == 1  # same number of cells in every row
    n_columns = lines[0].count(" | ") + 1
    assert n_columns == 3 + 1 + 3 + 3  # keys, n, three estimates, three Friedman p (no all-zero missing counts)
    bold_rows = [line for line in lines[2:] if "**" in line]
    assert len(bold_rows) == 4  # rollout (best MoRF) and ig/saliency (best LeRF, gap) per model
    rollout = next(line for line in lines if "| Rollout |" in line)
    assert rollout.count("**") == 2  # only its MoRF cell is bold
    assert "| SynthIndoor | METER-XXS | Saliency |" in markdown and "|  | PixelFormer-nano07 | Saliency |" in markdown

    latex = paths[2].read_text()
    spec = re.search(r"\\begin\{tabular\}\{([a-z]+)\}", latex).group(1)
    body = latex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(rows) == len(table)
    header = latex.split(r"\toprule")[1].split(r"\midrule")[0].strip()
    for line in [header, *rows]:
        assert len(re.findall(r"(?<!\\)&", line)) == len(spec) - 1
    assert re.search(r"(?<!\\)_", latex) is None  # every underscore escaped
    assert r"depth\_rmse" in latex and r"50\%" in latex
    for environment in ("table", "tabular"):
        assert latex.count(rf"\begin{{{environment}}}") == latex.count(rf"\end{{{environment}}}") == 1
    assert latex.count(r"\textbf{") == 6 and latex.count("{") == latex.count("}")
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"\label{tab:table-1}" in latex

    # Rerun: same bytes.
    again = write_table(table1_depth(statistics["summary"], statistics["friedman"]), tmp_path / "again", caption)
    assert again[0].read_bytes() == paths[0].read_bytes()
    assert again[1].read_bytes() == paths[1].read_bytes()


def _rendering_table() -> pd.DataFrame:
    """Two rows: a negative mean with its interval, a mean whose interval is undefined; a header with a pipe."""
    return pd.DataFrame({"dataset": ["nyu", "nyu"], "model": ["meter_xxs", "meter_s"], "n": [5, 5],
                         "x_mean": [-0.01234, 0.5], "x_ci_low": [-0.02, np.nan], "x_ci_high": [0.0, np.nan],
                         "odd|name": ["a_b", "c"]})


def test_markdown_row_shows_display_names_and_the_mean_with_its_interval() -> None:
    lines = _table_lines(to_markdown(_rendering_table(), "cap"))
    assert lines[2] == r"| NYU Depth v2 | METER-XXS | 5 | −0.0123 [−0.0200, 0.0000] | a_b |"


def test_markdown_row_omits_an_undefined_interval_and_a_repeated_dataset() -> None:
    lines = _table_lines(to_markdown(_rendering_table(), "cap"))
    assert lines[3] == r"|  | METER-S | 5 | 0.5000 | c |"  # no interval where the CI is undefined


def test_markdown_escapes_a_pipe_in_a_header() -> None:
    lines = _table_lines(to_markdown(_rendering_table(), "cap"))
    assert r"odd\|name" in lines[0]


def test_latex_escapes_caption_and_cells_and_typesets_minus_signs() -> None:
    latex = to_latex(_rendering_table(), "a & b", label="tab:x")
    assert r"\caption{a \& b}" in latex and r"a\_b" in latex and r"$-$0.0123" in latex


def test_latex_escape_of_special_characters() -> None:
    assert latex_escape("50%_#{x}") == r"50\%\_\#\{x\}"


def test_display_names_of_models_and_methods_unknown_ones_unchanged() -> None:
    assert display_name("model", "pixelformer_large07") == "PixelFormer-large07"
    assert display_name("method", "ig") == "IG" and display_name("method", "gradcam") == "gradcam"


def test_methods_sort_paper_methods_first_then_alphabetical_then_baselines() -> None:
    assert sort_methods(["random", "zeta", "ig", "saliency", "alpha"]) == ["saliency", "ig", "alpha", "zeta", "random"]


def test_precision_follows_each_block_not_the_whole_column() -> None:
    # Infidelity of the default run: about 3e-4 on one dataset, about 26 on the other; a column-wide precision
    # would print 0.000 for the first.
    table = pd.DataFrame({"dataset": ["synthindoor", "synthindoor", "synthroad"], "model": ["meter_xxs"] * 3,
                          "method": ["saliency", "ig", "saliency"], "n": [32, 32, 32],
                          "infidelity_mean": [0.000315675, 0.000314654, 26.3205746]})
    lines = _table_lines(to_markdown(table, "cap"))
    assert lines[2].endswith("| 0.000316 |") and lines[3].endswith("| 0.000315 |"), lines
    assert lines[4].endswith("| 26.3 |"), lines


# ------------------------------------------------------------------------------------------------ figures


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def _check_written(paths, fig) -> None:
    png, pdf = paths
    width, height = fig.get_size_inches() * DPI
    assert _png_size(png) == (round(width), round(height))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # something was drawn


def _curves(n_images: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    slope = {"saliency": 1.0, "ig": 0.8, "random": 0.3}
    rows = []
    for model in MODELS:
        for method, s in slope.items():
            for i in range(n_images):
                for order in ("morf", "lerf"):
                    for fraction in (0.0, 0.1, 0.3, 0.5):
                        value = (s if order == "morf" else 1.2 - s) * fraction + 0.02 * rng.random() * (fraction > 0)
                        for curve in ("depth_rmse", "gt_rmse", "target_change", "target_change@road"):
                            rows.append(("synthindoor", model, method, f"img_{i}", order, fraction, curve, value))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "order", "fraction", "curve", "value"])


def test_curve_bands_match_direct_computation() -> None:
    curves = _curves()
    bands = figures.curve_bands(curves, curve="depth_rmse", band="t", confidence=0.9)
    assert len(bands) == 2 * 3 * 2 * 4
    point = curves[(curves["model"] == "meter_xxs") & (curves["method"] == "ig") & (curves["order"] == "morf")
                   & (curves["fraction"] == 0.3) & (curves["curve"] == "depth_rmse")]["value"].to_numpy()
    row = bands[(bands["model"] == "meter_xxs") & (bands["method"] == "ig") & (bands["order"] == "morf")
                & (bands["fraction"] == 0.3)].iloc[0]
    low, high = stats.t.interval(0.9, len(point) - 1, loc=point.mean(), scale=stats.sem(point))
    assert (row["mean"], row["low"], row["high"]) == (pytest.approx(point.mean()), pytest.approx(low),
                                                      pytest.approx(high))
    boot = figures.curve_bands(curves, curve="depth_rmse", band="bootstrap", n_resamples=300, seed=2)
    row = boot[(boot["model"] == "meter_xxs") & (boot["method"] == "ig") & (boot["order"] == "morf")
               & (boot["fraction"] == 0.3)].iloc[0]
    _, low, high = bootstrap_ci(np.sort(point), n_resamples=300, method="percentile", seed=2)
    assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
    zero = boot[boot["fraction"] == 0.0]
    assert len(zero) == 2 * 3 * 2  # models x methods x orders
    assert (zero["low"] == 0).all() and (zero["high"] == 0).all()  # nothing removed: no change, no spread
    with pytest.raises(ValueError, match="no curve"):
        figures.curve_bands(curves, curve="nope")


def test_figure_curves_written_and_byte_identical(tmp_path) -> None:
    curves = _curves()
    fig = figures.plot_curves(curves, n_resamples=100)
    first = figures.figure_curves(curves, tmp_path / "a", n_resamples=100, dpi=DPI)
    second = figures.figure_curves(curves.sample(frac=1.0, random_state=3), tmp_path / "b", n_resamples=100, dpi=DPI)
    _check_written(first, fig)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    one_model = figures.plot_curves(curves[curves["model"] == "meter_xxs"], n_resamples=50)
    assert one_model.get_size_inches()[1] < fig.get_size_inches()[1]  # one facet row fewer
    # one column per removal scheme and order: target_change and target_change@road
    assert len(fig.axes[0].figure.axes) >= 2 * 4
    assert figures.curve_schemes(curves, "target_change") == ["target_change", "target_change@road"]
    assert "removal: road" in fig.axes[2].get_title()
    single = figures.plot_curves(curves, curve="depth_rmse", n_resamples=50)
    assert single.get_size_inches()[0] < fig.get_size_inches()[0]


def _fidelity_scores() -> tuple[pd.DataFrame, set[tuple[str, str, str]]]:
    """AF and MoRF AUC that agree (both follow one per-point quality) except for two constructed points per model,
    which are made best by one metric and worst by the other."""
    rng = np.random.default_rng(5)
    rows, planted = [], set()
    for model in MODELS:
        quality = rng.permutation(36).astype(float)  # 3 methods x 12 images, distinct
        k = 0
        for method in ("saliency", "ig", "random"):
            for i in range(12):
                q = quality[k]
                fidelity, morf, infid = q + 0.2 * rng.random(), q + 0.2 * rng.random(), -q + 0.2 * rng.random()
                if (method, i) == ("ig", 3):
                    fidelity, morf = 100.0, -100.0  # AF says best, MoRF says worst
                    planted.add((model, method, f"img_{i:02d}"))
                if (method, i) == ("random", 7) and model == "pixelformer_nano07":
                    fidelity, morf = -100.0, 100.0
                    planted.add((model, method, f"img_{i:02d}"))
                k += 1
                for metric, value in (("attribution_fidelity", fidelity), ("gap_auc_target_change", morf),
                                      ("infidelity", infid)):
                    rows.append(("synthindoor", model, method, f"img_{i:02d}", metric, value))
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "image_id", "metric", "value"]), planted


def test_disagreement_rule_marks_exactly_the_constructed_points() -> None:
    scores, planted = _fidelity_scores()
    points = figures.disagreement_points(scores, threshold=0.5)
    assert len(points) == 2 * 36
    flagged = {tuple(r)
               for r in points.loc[points["disagree"], ["model", "method", "image_id"]].itertuples(index=False)}
    assert flagged == planted and len(planted) == 3
    # The percentiles are rank / n within each (dataset, model).
    meter = points[points["model"] == "meter_xxs"]
    np.testing.assert_allclose(meter["fidelity_pct"], stats.rankdata(meter["fidelity"]) / 36)
    planted_row = meter[(meter["method"] == "ig") & (meter["image_id"] == "img_03")].iloc[0]
    assert (planted_row["fidelity_pct"], planted_row["conventional_pct"]) == (1.0, pytest.approx(1 / 36))
    # Infidelity is lower-is-better: oriented, it agrees with AF (= -quality), except where AF was planted.
    infid = figures.disagreement_points(scores, conventional="infidelity", threshold=0.5)
    flagged_infid = {tuple(r) for r in infid.loc[infid["disagree"], ["model", "method", "image_id"]]
                     .itertuples(index=False)}
    assert set(infid.loc[infid["disagree"], "image_id"]) <= {"img_03", "img_07"}
    assert flagged_infid and flagged_infid <= planted  # some planted point shows, and nothing else does
    assert figures.disagreement_points(scores, threshold=0.99)["disagree"].sum() == 0
    assert "differ by more than 0.3" in figures.disagreement_caption(threshold=0.3)
    # A gap the scores lack is derived from its MoRF and LeRF AUCs, per image.
    split = scores[scores["metric"] == "gap_auc_target_change"]
    derived = pd.concat([scores[scores["metric"] != "gap_auc_target_change"],
                         split.assign(metric="morf_auc_target_change", value=split["value"] + 1.0),
                         split.assign(metric="lerf_auc_target_change", value=1.0)])
    pd.testing.assert_frame_equal(figures.disagreement_points(derived), points)
    # A point whose AF is NaN is left out.
    scores.loc[(scores["metric"] == "attribution_fidelity") & (scores["image_id"] == "img_00"), "value"] = np.nan
    assert len(figures.disagreement_points(scores)) == 2 * 33


def test_figure_fidelity_vs_conventional(tmp_path) -> None:
    scores, _ = _fidelity_scores()
    fig = figures.plot_fidelity_vs_conventional(scores)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    points = figures.disagreement_points(scores)
    meter = points[points["model"] == "meter_xxs"]
    rho = stats.spearmanr(meter["fidelity"], meter["conventional"]).statistic
    assert f"Spearman ρ = {rho:.2f} (n = 36), 1 disagree" in titles[0]
    assert "2 disagree" in titles[1]
    first = figures.figure_fidelity_vs_conventional(scores, tmp_path / "a", dpi=DPI)
    second = figures.figure_fidelity_vs_conventional(scores, tmp_path / "b", dpi=DPI)
    _check_written(first, fig)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_violins_and_correlation_heatmap(tmp_path) -> None:
    from depthxai.stats.reliability import inter_method_reliability

    scores = _scores(n_images=8)
    scores = scores[scores["model"] == "meter_xxs"]
    fig = figures.plot_metric_violins(scores, metrics=("attribution_fidelity", "infidelity", "not_there"))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    _check_written(figures.figure_metric_violins(scores, tmp_path / "violins", metrics=("attribution_fidelity",
                                                                                         "infidelity"), dpi=DPI), fig)
    correlations = inter_method_reliability(scores[scores["metric"].isin(["attribution_fidelity", "infidelity"])])
    fig = figures.plot_method_correlation(correlations)
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_visible() and ax.get_title()]
    assert len(heatmaps) == 2
    shown = heatmaps[0].images[0].get_array()
    assert shown.shape == (4, 4)
    expected = correlations[correlations["metric"] == "attribution_fidelity"].pivot(
        index="method_a", columns="method_b", values="spearman").loc[METHODS, METHODS]
    np.testing.assert_allclose(np.asarray(shown), expected.to_numpy())
    _check_written(figures.figure_method_correlation(correlations, tmp_path / "corr", dpi=DPI), fig)


def test_method_colours_are_fixed() -> None:
    colours = figures.method_colors(["random", "ig", "zeta", "saliency", "alpha"])
    assert colours["saliency"] == figures.METHOD_COLORS["saliency"] and colours["random"] == "#7F7F7F"
    assert (colours["alpha"], colours["zeta"]) == figures.EXTRA_COLORS[:2]
    assert figures.method_colors(["ig"])["ig"] == colours["ig"]


# ------------------------------------------------------------------------------------------------ Figure 1


@pytest.fixture()
def qualitative_inputs(tmp_path):
    """A 5-image dataset of 16x24 frames (some pixels without ground truth), predictions on an 8x12 grid and maps
    of two methods, each split over two shard files."""
    root = tmp_path / "data"
    info = DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3, max_depth=10.0,
                       eval_crop="none", image_size=(16, 24))
    rng = np.random.default_rng(0)
    ids = [f"test_{i:03d}" for i in range(5)]
    for image_id in ids:
        write_rgb(root / "rgb" / f"{image_id}.png", rng.integers(0, 256, size=(16, 24, 3), dtype=np.uint8))
        depth = np.tile(np.linspace(1.0, 8.0, 24, dtype=np.float32), (16, 1))
        depth[:3, :5] = 0.0  # no ground truth
        depth[3, 0] = 12.0  # beyond max_depth: not valid either
        write_depth(root / "depth" / f"{image_id}.png", depth, info.depth_scale)
    write_index(root, pd.DataFrame({"id": ids, "split": "test", "rgb": [f"rgb/{i}.png" for i in ids],
                                    "depth": [f"depth/{i}.png" for i in ids]}))
    write_dataset_info(root, info)
    natives = {i: np.full((1, 8, 12), 2.0 + k, np.float32) for k, i in enumerate(ids)}
    maps = {m: {i: rng.normal(size=(16, 24)).astype(np.float32) for i in ids} for m in ("saliency", "ig")}
    shards = [ids[:3], ids[3:]]
    prediction_paths, map_paths = [], {m: [] for m in maps}
    for s, shard in enumerate(shards):
        prediction_paths.append(tmp_path / f"pred_{s}.npz")
        write_npz(prediction_paths[-1], ids=np.asarray(shard), native=np.stack([natives[i] for i in shard]))
        for method in maps:
            map_paths[method].append(tmp_path / f"{method}_{s}.npz")
            write_npz(map_paths[method][-1], ids=np.asarray(shard), maps=np.stack([maps[method][i] for i in shard]),
                      convergence_delta=np.zeros(len(shard), np.float32))
    card = ModelCard(name="meter_xxs_synthindoor", arch="meter", variant="xxs", dataset="synthindoor",
                     input_size=(16, 24), imagenet_norm=True, output_unit_m=0.01, min_depth=1e-3, max_depth=10.0,
                     builder="depthxai.models.meter:build_meter")
    return root, prediction_paths[::-1], map_paths, card, natives, maps


def test_qualitative_panels_align_the_inputs(qualitative_inputs) -> None:
    root, predictions, attributions, card, natives, maps = qualitative_inputs
    card_out, panels = qualitative_panels(root, predictions, attributions, model=card, n_images=3)
    assert card_out is card
    assert [p.image_id for p in panels] == ["test_000", "test_002", "test_004"]  # spread over the sorted ids
    panel = panels[1]
    assert list(panel.relevance) == ["saliency", "ig"]
    assert panel.rgb.shape == (16, 24, 3) and 0 <= panel.rgb.min() and panel.rgb.max() <= 1
    assert np.isnan(panel.ground_truth[:3, :5]).all() and np.isnan(panel.ground_truth[3, 0])
    assert np.isfinite(panel.ground_truth[4:]).all()
    np.testing.assert_allclose(panel.ground_truth[8], np.linspace(1, 8, 24), atol=1e-3)
    np.testing.assert_allclose(panel.prediction, 4.0)  # test_002's constant prediction, upsampled
    magnitude = np.abs(maps["ig"]["test_002"])
    np.testing.assert_allclose(panel.relevance["ig"], np.clip(magnitude / np.percentile(magnitude, 99), 0, 1),
                               rtol=1e-6)
    assert figures.depth_range(panels)[1] <= 8.0
    with pytest.raises(DataError, match="test_999"):
        qualitative_panels(root, predictions, attributions, model=card, image_ids=["test_999"])
    with pytest.raises(DataError, match="in none of"):
        qualitative_panels(root, predictions[:1], attributions, model=card, image_ids=["test_000"])
    assert relevance_display(np.zeros((2, 2))).max() == 0


def test_qualitative_panels_file_round_trip_is_exact(qualitative_inputs, tmp_path) -> None:
    root, predictions, attributions, card, _, _ = qualitative_inputs
    _, panels = qualitative_panels(root, predictions, attributions, model=card, image_ids=["test_004", "test_001"])
    no_truth = QualitativePanel("no_depth", panels[0].rgb, None, panels[0].prediction, panels[0].relevance)
    write_panels(tmp_path / "p.npz", "meter_xxs", "synthindoor", [*panels, no_truth], percentile=97.5)
    back = read_panels(tmp_path / "p.npz")
    assert (back.model, back.dataset, back.percentile, back.size) == ("meter_xxs", "synthindoor", 97.5, (16, 24))
    assert [p.image_id for p in back.panels] == ["test_004", "test_001", "no_depth"]
    assert back.methods == ["saliency", "ig"] and back.panels[2].ground_truth is None
    for ours, theirs in zip(panels, back.panels):
        for name in ("rgb", "ground_truth", "prediction"):  # bit for bit, dtype included
            a, b = getattr(ours, name), getattr(theirs, name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        assert list(ours.relevance) == list(theirs.relevance) == back.methods
        assert all(ours.relevance[m].tobytes() == theirs.relevance[m].tobytes() for m in ours.relevance)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        read_panels(tmp_path / "bad.npz")


def test_figure_qualitative_written_and_byte_identical(qualitative_inputs, tmp_path) -> None:
    root, predictions, attributions, card, _, _ = qualitative_inputs
    ids = ["test_001", "test_003"]
    _, panels = qualitative_panels(root, predictions, {"ig": attributions["ig"], "saliency": attributions["saliency"]},
                                   model=card, image_ids=ids)
    write_panels(tmp_path / "panels.npz", "meter_xxs", "synthindoor", panels)
    fig = figures.plot_qualitative(tmp_path / "panels.npz")
    first = figures.figure_qualitative(tmp_path / "panels.npz", tmp_path / "a", dpi=DPI)
    second = figures.figure_qualitative(tmp_path / "panels.npz", tmp_path / "b", dpi=DPI)
    _check_written(first, fig)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    titles = [ax.get_title() for ax in fig.axes]
    assert {"Input", "Ground truth", "Prediction", "Saliency", "IG"} <= set(titles)
    # the panels file holds IG first; the figure shows the methods in the canonical order
    assert [t for t in titles if t] == ["Input", "Ground truth", "Prediction", "Saliency", "IG"]
    # Stacked layout (one column per image) keeps every panel; an SVG is reproducible too.
    stacked = figures.plot_qualitative(tmp_path / "panels.npz", layout="columns")
    assert {"test_001", "test_003"} <= {ax.get_title() for ax in stacked.axes}
    svg_a = figures.save_figure(stacked, tmp_path / "s1", formats=("svg",), dpi=DPI)[0].read_bytes()
    svg_b = figures.save_figure(stacked, tmp_path / "s2", formats=("svg",), dpi=DPI)[0].read_bytes()
    assert svg_a == svg_b and b"<svg" in svg_a[:500]
    assert b"dc:date" not in svg_a  # no timestamp
