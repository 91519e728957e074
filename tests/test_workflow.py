"""The whole DAG on a tiny configuration in a temporary directory: every table and figure of the study exists
with the right rows, and a second run with nothing changed has nothing to do.

The configuration (tests/data/tiny_config.yaml) has both architectures and every method, so every rule of the
default workflow runs once; it takes a few minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
MODELS = sorted(TINY["models"])
METHODS = sorted(TINY["methods"])
DATASETS = sorted(TINY["datasets"])


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tiny_config.yaml",
                           *args], cwd=workdir, capture_output=True, text=True, timeout=1500, check=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, copy_checkout: Callable[[Path], Path]) -> Path:
    workdir = copy_checkout(tmp_path_factory.mktemp("workflow"))
    (workdir / "tiny_config.yaml").write_text(yaml.safe_dump(TINY))
    result = _snakemake(workdir)
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir


def test_every_table_has_one_row_per_combination(tiny_run: Path) -> None:
    n_test = TINY["datasets"]["synthindoor"]["n_test"]
    for name in ("table1", "table1_depth", "table2"):
        table = pd.read_csv(tiny_run / "results" / "tables" / f"{name}.csv")
        combos = sorted(zip(table["dataset"], table["model"], table["method"]))
        assert combos == sorted((d, m, meth) for d in DATASETS for m in MODELS for meth in METHODS), name
        assert (table["n"] == n_test).all()
        for ext in ("md", "tex"):
            assert (tiny_run / "results" / "tables" / f"{name}.{ext}").stat().st_size > 200
    accuracy = pd.read_csv(tiny_run / "results" / "tables" / "accuracy.csv")
    assert sorted(zip(accuracy["dataset"], accuracy["model"])) == [(d, m) for d in DATASETS for m in MODELS]
    assert accuracy["delta1_mean"].between(0, 1).all()


def test_tidy_results_are_complete(tiny_run: Path) -> None:
    n_test = TINY["datasets"]["synthindoor"]["n_test"]
    scores = pd.read_csv(tiny_run / "results" / "evaluation" / "scores.csv", dtype={"image_id": str})
    per_image = scores.groupby(["dataset", "model", "method", "metric"])["image_id"].nunique()
    assert (per_image == n_test).all()
    metrics = set(scores["metric"])
    schemes = [s["name"] for s in TINY["evaluation"]["schemes"]]
    assert {f"{o}_auc_{c}{'' if k == 0 else '@' + name}" for k, name in enumerate(schemes) for o in ("morf", "lerf")
            for c in ("target_change", "depth_rmse", "gt_absrel_change")} <= metrics
    assert {"attribution_fidelity", "infidelity", "infidelity_unsigned"} <= metrics
    # Infidelity only where the maps carry a sign; not comparable (and named so) where they do not
    signed = set(scores.loc[scores["metric"] == "infidelity", "method"])
    assert signed == {"saliency", "ig", "random"}
    assert set(scores.loc[scores["metric"] == "infidelity_unsigned", "method"]) == {"rollout", "explainer",
                                                                                    "random_smooth"}
    assert set(scores.loc[scores["metric"] == "convergence_delta", "method"]) == {"ig"}
    curves = pd.read_csv(tiny_run / "results" / "evaluation" / "curves.csv", dtype={"image_id": str})
    fractions = sorted(curves["fraction"].unique())
    assert fractions == TINY["evaluation"]["fractions"]
    at_zero = curves[(curves["fraction"] == 0) & curves["curve"].str.startswith("depth_")]
    depth_curves = {f"depth_{c}{'' if k == 0 else '@' + name}" for k, name in enumerate(schemes)
                    for c in ("rmse", "absrel")}
    assert set(at_zero["curve"]) == depth_curves
    # one row per dataset, model, method, image, order and depth curve
    assert len(at_zero) == len(DATASETS) * len(MODELS) * len(METHODS) * n_test * 2 * len(depth_curves)
    assert (at_zero["value"] == 0).all()  # removing nothing changes nothing
    summary = pd.read_csv(tiny_run / "results" / "stats" / "summary.csv")
    assert len(summary) > 0
    assert ((summary["ci_low"] <= summary["mean"] + 1e-12).all()
            and (summary["mean"] <= summary["ci_high"] + 1e-12).all())
    friedman = pd.read_csv(tiny_run / "results" / "stats" / "friedman.csv")
    assert set(friedman["model"]) == set(MODELS) and friedman["p"].dropna().between(0, 1).all()
    assert "infidelity_unsigned" not in set(friedman["metric"])  # never compared across methods
    paired = pd.read_csv(tiny_run / "results" / "stats" / "paired.csv")
    assert set(paired["baseline"]) == {"random_smooth"} and "random_smooth" not in set(paired["method"])
    assert set(paired["n_seeds"]) == {2}  # the main run and the training-seed repeat: a two-level bootstrap
    assert paired["ci_method"].str.startswith("two-level").all()
    for model in MODELS:  # the smooth baseline's length was measured on this model's maps
        smooth = yaml.safe_load((tiny_run / "results" / "attributions" / "synthindoor" / model /
                                 "smoothness.json").read_text())
        assert smooth["correlation_length_px"] > 0 and set(smooth["per_method"]) == {"saliency", "ig", "rollout"}


def test_every_figure_is_a_real_image(tiny_run: Path) -> None:
    figures = tiny_run / "results" / "figures"
    names = [f"figure1_{d}_{m}" for d in DATASETS for m in MODELS]
    names += ["figure2", "figure3", "randomisation", "violins", "method_correlation"]
    for name in names:
        with Image.open(figures / f"{name}.png") as image:
            pixels = np.asarray(image.convert("L"))
        assert min(pixels.shape) > 300, name
        assert pixels.std() > 10, f"{name} looks blank"


def test_science_and_claims(tiny_run: Path) -> None:
    results = tiny_run / "results"
    claims = results / "claims.md"
    text = claims.read_text()
    for claim in ("Claim 1", "Claim 2", "Claim 3"):
        assert claim in text
    claims_table = pd.read_csv(results / "claims.csv", dtype={"claim": str})
    # per claim and removal scheme: one row per (dataset, model) of the claim's family, one for the claim as a whole
    roles = ["primary"] + [f"scheme:{scheme['name']}" for scheme in TINY["evaluation"]["schemes"][1:]]
    families = {"1": [m for m in MODELS if m.startswith("meter_")],
                "2": [m for m in MODELS if m.startswith("pixelformer_")], "3": MODELS}
    expected_rows = Counter({(claim, role, "pair"): len(DATASETS) * len(models)
                             for claim, models in families.items() for role in roles})
    expected_rows.update({(claim, role, "all"): 1 for claim in families for role in roles})
    assert Counter(zip(claims_table["claim"], claims_table["role"], claims_table["scope"])) == expected_rows
    assert len(claims_table) == sum(expected_rows.values()) == 21
    assert set(claims_table["verdict"]) <= {"supported", "not supported", "inconclusive", "not evaluated"}
    assert set(claims_table["role"]) == {"primary", "scheme:road", "scheme:patch"}
    assert set(claims_table["scope"]) == {"pair", "all"}
    sanity = pd.read_csv(results / "science" / "synthindoor" / "meter_xxs" / "sanity.csv", dtype={"image_id": str})
    n_sanity = TINY["science"]["sanity"]["n_images"]
    step0 = sanity[(sanity["step"] == 0) & sanity["metric"].isin(["spearman", "ssim"])]
    assert len(step0) == sanity["method"].nunique() * n_sanity * 2 and sanity["method"].nunique() >= 2
    assert np.allclose(step0["value"], 1.0)  # the intact model reproduces its own maps
    randomised = sanity[(sanity["method"] == "random") & (sanity["metric"] == "ssim")]
    assert len(randomised) == sanity["step"].nunique() * n_sanity and sanity["step"].nunique() >= 2  # every step
    assert np.allclose(randomised["value"], 1.0)  # a model-independent map never changes: the known answer
    for table in ("randomisation", "localisation", "reliability"):
        assert len(pd.read_csv(results / "tables" / f"{table}.csv")) > 0
    # the explainer trained again against the fully randomised model: rows at step 0 and the last step only
    explainer = sanity[sanity["method"] == "explainer"]
    assert sorted(explainer["step"].unique()) == [0, int(sanity["step"].max())]
    localisation = pd.read_csv(results / "tables" / "localisation.csv")
    oracle = localisation[localisation["method"] == "oracle"]
    assert len(oracle) == len(MODELS) and np.allclose(oracle["fidelity_mosaic_mean"], 1.0)
    alpha = pd.read_csv(results / "science" / "reliability" / "alpha.csv")
    assert set(alpha["methods_set"]) == {"explanations", "all"}
    # one row per (dataset, model) and metric
    explained = alpha[alpha["methods_set"] == "explanations"].set_index("metric")["n_methods"]
    assert len(explained.loc[["infidelity"]]) == len(DATASETS) * len(MODELS)
    assert (explained.loc[["infidelity"]] == 2).all()  # the signed maps only: saliency, ig
    assert len(explained.drop("infidelity")) > 0 and (explained.drop("infidelity") == 3).all()  # saliency, ig, rollout
    icc = pd.read_csv(results / "science" / "reliability" / "icc.csv")
    assert set(icc["factor"]) == {"analysis_seed", "training_seed"}
    reliability = pd.read_csv(results / "tables" / "reliability.csv")
    assert {"icc_analysis_seed_mean", "icc_training_seed_mean"} <= set(reliability.columns)


def test_training_seed_repeat_changes_only_the_training_seed(tiny_run: Path) -> None:
    import torch

    results = tiny_run / "results"
    for model in MODELS:
        main = torch.load(results / "models" / "synthindoor" / model / "weights.pt", weights_only=True)
        repeat = results / "science" / "retrain" / "synthindoor" / model / "repeat-1"
        again = torch.load(repeat / "weights.pt", weights_only=True)
        assert main.keys() == again.keys()
        assert any(not torch.equal(main[k], again[k]) for k in main)  # another training seed, another model
        # the analysis seed is unchanged: the model-independent random maps are the main run's, bit for bit
        with np.load(results / "attributions" / "synthindoor" / model / "random" / "shard-0.npz") as a, \
                np.load(repeat / "attributions" / "random" / "shard-0.npz") as b:
            names = [k for k in a.files if k.startswith("maps/")]
            assert len(names) == TINY["datasets"]["synthindoor"]["n_test"]
            assert all(np.array_equal(a[k], b[k]) for k in names)
        scores = pd.read_csv(repeat / "evaluation" / "saliency" / "shard-0.scores.csv", dtype={"image_id": str})
        assert set(scores["factor"]) == {"training_seed"} and set(scores["repeat"]) == {1}
    retest = pd.read_csv(results / "science" / "retest.csv", dtype={"image_id": str})
    n_test = TINY["datasets"]["synthindoor"]["n_test"]
    per_factor = retest.groupby(["factor", "method"])["image_id"].nunique()
    assert (per_factor == n_test).all() and set(per_factor.index.get_level_values("factor")) == {
        "analysis_seed", "training_seed"}


def test_model_cards_and_explainer(tiny_run: Path) -> None:
    import json

    for dataset in DATASETS:
        for model in MODELS:
            folder = tiny_run / "results" / "models" / dataset / model
            card = json.loads((folder / "card.json").read_text())
            assert card["name"] == f"{model}_{dataset}" and len(card["weights_sha256"]) == 64
            assert 0 <= card["accuracy"]["delta1"] <= 1
            assert (folder / "explainer.pt").stat().st_size > 10_000


def test_second_run_has_nothing_to_do(tiny_run: Path) -> None:
    result = _snakemake(tiny_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
