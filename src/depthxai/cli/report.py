"""Statistics and report commands: summaries and tests, Tables 1-2 and the accuracy table, Figures 1-3."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from depthxai.cli.common import add_command, json_arg


def run_stats(args: argparse.Namespace) -> None:
    from depthxai.config import section_defaults
    from depthxai.fileio import write_csv
    from depthxai.stats.run import run_statistics
    from depthxai.tidy import read_tidy

    settings = section_defaults("stats", args.stats)
    tables = run_statistics(read_tidy(args.scores), alpha=settings["alpha"], confidence=settings["confidence"],
                            n_resamples=settings["bootstrap_resamples"], seed=args.seed, baseline=args.baseline,
                            retest=read_tidy(args.retest) if args.retest else None)
    for name, out in (("summary", args.out_summary), ("friedman", args.out_friedman), ("wilcoxon", args.out_wilcoxon),
                      ("paired", args.out_paired)):
        write_csv(out, tables[name])


def run_tables(args: argparse.Namespace) -> None:
    from depthxai.report.tables import write_study_tables
    from depthxai.tidy import read_tidy

    write_study_tables(read_tidy(args.summary), read_tidy(args.friedman), read_tidy(args.paired),
                       read_tidy(args.accuracy), args.out_dir, baseline=args.baseline)


def run_figure_qualitative(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_qualitative

    figure_qualitative(args.panels, args.out_stem, layout=args.layout, formats=args.formats)


def run_figure_curves(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_curves
    from depthxai.tidy import read_tidy

    figure_curves(read_tidy(args.curves), args.out_stem, curve=args.curve, formats=args.formats)


def run_figure_fidelity(args: argparse.Namespace) -> None:
    from depthxai.report.figures import figure_fidelity_vs_conventional
    from depthxai.tidy import read_tidy

    figure_fidelity_vs_conventional(read_tidy(args.scores), args.out_stem, conventional=args.conventional,
                                    formats=args.formats)


def register(sub: Any) -> None:
    p = add_command(sub, "stats", "bootstrap CIs, Friedman across methods and Holm-corrected Wilcoxon pairs from "
                    "scores.csv", run_stats)
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--stats", type=json_arg, default={}, help="the config's stats section as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", default="random_smooth", help="reference method of the paired differences")
    p.add_argument("--retest", type=Path, default=None,
                   help="test-retest scores: training-seed repeats make the paired CIs two-level bootstraps")
    p.add_argument("--out-summary", type=Path, required=True)
    p.add_argument("--out-friedman", type=Path, required=True)
    p.add_argument("--out-wilcoxon", type=Path, required=True)
    p.add_argument("--out-paired", type=Path, required=True)

    p = add_command(sub, "tables", "Table 1 (and its whole-map variant), Table 2 and the accuracy table as CSV, "
                    "Markdown and LaTeX", run_tables)
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--friedman", type=Path, required=True)
    p.add_argument("--paired", type=Path, required=True, help="paired differences to the baseline (stats rule)")
    p.add_argument("--baseline", default="random_smooth")
    p.add_argument("--accuracy", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)

    p = add_command(sub, "figure-qualitative", "Figure 1: image, ground truth, prediction and each method's map for "
                    "a few images, from the qualitative-panels file", run_figure_qualitative)
    p.add_argument("--panels", type=Path, required=True, help="the qualitative-panels .npz")
    p.add_argument("--layout", choices=("auto", "rows", "columns"), default="auto")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)

    p = add_command(sub, "figure-curves", "Figure 2: MoRF/LeRF curves with confidence bands", run_figure_curves)
    p.add_argument("--curves", type=Path, required=True)
    p.add_argument("--curve", default="target_change")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)

    p = add_command(sub, "figure-fidelity", "Figure 3: Attribution Fidelity against a conventional metric, "
                    "disagreements marked", run_figure_fidelity)
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--conventional", default="gap_auc_target_change")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--out-stem", type=Path, required=True)
