"""Configuration: the repository's config validates with defaults filled; every error names the offending key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthxai.config import load_config, load_schema, section_defaults, validate_config
from depthxai.errors import ConfigError
from depthxai.evaluation.run import EvaluationConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_repository_config_validates_with_defaults(raw_config: dict[str, Any]) -> None:
    resolved = validate_config(raw_config)
    assert resolved["datasets"]["synthindoor"]["size"] == [240, 320]  # given values kept
    # defaults filled where the file is silent
    assert resolved["resources_dir"] == "resources" and resolved["mirror"] is None and resolved["downloads"] == {}
    assert resolved["datasets"]["synthindoor"]["depth_source"] == "filled"
    assert resolved["methods"]["ig"]["method"] == "gausslegendre" and resolved["methods"]["ig"]["blur_sigma"] == 5.0
    assert resolved["attribution"]["target"]["quantile"] == 0.25
    assert resolved["evaluation"]["batch_size"] == 16
    pixel, road = resolved["evaluation"]["schemes"]  # scheme defaults filled inside the list's items
    assert pixel == {"name": "pixel", "unit": "pixel", "replacement": "mean", "patch_size": 8, "blur_sigma": 5.0,
                     "noise_std": 0.2, "road_noise_std": 0.01}
    assert road["replacement"] == "road" and road["unit"] == "pixel"
    assert resolved["methods"]["random_smooth"] == {"correlation_length": "auto",
                                                     "match_methods": ["saliency", "ig", "rollout"]}
    assert resolved["claims"] == {"methods": ["saliency", "ig", "rollout"], "metric": "gap_auc_target_change",
                                  "baseline": "random_smooth", "af_margin": 0.1}
    assert resolved["science"]["reliability"] == {"methods": None} and resolved["science"]["sanity"]["explainer"]
    # the input is not modified
    assert "resources_dir" not in raw_config and "method" not in raw_config["methods"]["ig"]
    # a minimal config gets every section
    minimal = {"datasets": {"synthindoor": {"source": "synthetic", "setup": "indoor", "n_test": 4, "size": [64, 64],
                                            "n_train": 1}},
               "models": {"meter_xxs": {"weights": {"synthindoor": "train"}}}, "methods": {"random": {}},
               "science": {"enabled": False}}
    full = validate_config(minimal)
    assert full["seed"] == 0 and full["device"] == "cpu" and full["threads"] == 1 and full["shards"] == 1
    assert full["attribution"] == {"target": {"kind": "mean", "quantile": 0.25}, "channel_reduction": "sum"}
    assert full["evaluation"]["fractions"] == [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
    assert full["evaluation"]["fidelity"] == {"measure": "pearson", "resolution": "native"}
    assert full["evaluation"]["infidelity"] == {"n_perturb_samples": 16, "noise_std": 0.05, "normalize": True}
    assert full["stats"] == {"alpha": 0.05, "bootstrap_resamples": 2000, "confidence": 0.95}
    assert full["report"] == {"qualitative_images": 4, "formats": ["png", "pdf"]}
    # and the evaluation section builds the typed config used by the stage
    config = EvaluationConfig.from_config(full["evaluation"])
    assert [s.name for s in config.schemes] == ["pixel", "road"] and config.schemes[1].replacement == "road"
    assert config.schemes[0].fractions == (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    assert config.infidelity_normalize is True and config.fidelity_resolution == "native"


def test_section_defaults_agree_with_the_full_validation() -> None:
    minimal = {"datasets": {"synthroad": {"source": "synthetic", "setup": "road", "n_test": 4, "size": [64, 64]}},
               "models": {"meter_xxs": {"weights": {"synthroad": "ckpt"}}}, "methods": {"saliency": {}},
               "downloads": {"ckpt": {"url": "https://example.org/m.pth", "filename": "m.pth"}},
               "science": {"enabled": False}}
    resolved = validate_config(minimal)
    for section in ("attribution", "evaluation", "stats", "report", "claims"):
        assert section_defaults(section) == resolved[section]
    assert resolved["methods"]["saliency"] == {"abs": False}
    assert load_schema()["additionalProperties"] is False


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: set_path(config, path, value)


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(config: dict[str, Any]) -> None:
        node = config
        for key in parents:
            node = node[key]
        del node[last]

    return change


BAD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown top-level key", put("seeds", 3), r"config key seeds: unknown key"),
    ("unknown nested key", put("evaluation.fidelity.measures", "l1"),
     r"config key evaluation\.fidelity\.measures: unknown key"),
    ("unknown key in a method", put("methods.ig.steps", 3), r"config key methods\.ig\.steps: unknown key"),
    ("unknown dataset key", put("datasets.synthroad.n_tests", 3),
     r"config key datasets\.synthroad\.n_tests: unknown key"),
    ("wrong type", put("seed", "zero"), r"config key seed: 'zero' is not of type 'integer'"),
    ("wrong nested type", put("evaluation.infidelity.normalize", "yes"),
     r"config key evaluation\.infidelity\.normalize: 'yes' is not of type 'boolean'"),
    ("out of range", put("threads", 0), r"config key threads: 0 is less than the minimum of 1"),
    ("out of range nested", put("methods.rollout.discard_ratio", 1.0), r"config key methods\.rollout\.discard_ratio"),
    ("fraction above 1", put("evaluation.fractions", [0.0, 0.5, 1.5]), r"config key evaluation\.fractions\.2"),
    ("bad enum", put("attribution.target.kind", "median"), r"config key attribution\.target\.kind"),
    ("bad batch size", put("methods.ig.internal_batch_size", 0), r"config key methods\.ig\.internal_batch_size"),
    ("empty methods", put("methods", {}), r"config key methods: .*non-empty"),
    ("methods as a list", put("methods", []), r"config key methods: .*not of type 'object'"),
    ("unknown method", put("methods.lime", {}), r"config key methods\.lime: not one of depthxai's methods"),
    ("fractions not increasing", put("evaluation.fractions", [0.0, 0.2, 0.1]),
     r"config key evaluation\.fractions: must be increasing"),
    ("fractions not from 0", put("evaluation.fractions", [0.1, 0.2]),
     r"config key evaluation\.fractions: .*start at 0"),
    ("repeated fraction", put("evaluation.fractions", [0.0, 0.1, 0.1]),
     r"config key evaluation\.fractions: .*non-unique"),
    ("weights neither train nor download", put("models.meter_xxs.weights.synthroad", "meter_kitti"),
     r"config key models\.meter_xxs\.weights\.synthroad: 'meter_kitti' is neither 'train' nor a key of downloads"),
    ("weights for an unconfigured dataset", put("models.meter_xxs.weights.nyu", "train"),
     r"config key models\.meter_xxs\.weights\.nyu: 'nyu' is not a configured dataset"),
    ("training without training images", put("datasets.synthroad.n_train", 0),
     r"config key datasets\.synthroad\.n_train"),
    ("synthetic without size", drop("datasets.synthroad.size"), r"config key datasets\.synthroad\.size: required"),
    ("wrong setup", put("datasets.synthroad.setup", "indoor"), r"config key datasets\.synthroad\.setup"),
    ("unknown model", put("models.meter_xl", {"weights": {"synthroad": "train"}}), r"config key models"),
    ("unknown train setting", put("models.meter_xxs.train.warmup", 0.1),
     r"config key models\.meter_xxs\.train\.warmup: unknown key"),
    ("ema of 1", put("models.meter_xxs.train.ema", 1.0), r"config key models\.meter_xxs\.train\.ema"),
    ("all epochs at low resolution", put("models.meter_xxs.train.low_res_epochs", 99),
     r"config key models\.meter_xxs\.train\.low_res_epochs: 99 must be fewer than epochs"),
    ("more crop epochs than epochs",
     lambda c: c["models"]["meter_xxs"]["train"].update(crop_epochs=99, crop_size=[128, 192]),
     r"config key models\.meter_xxs\.train\.crop_epochs: 99 must be at most epochs"),
    ("crop size a PixelFormer cannot take",
     lambda c: c["models"]["pixelformer_nano07"]["train"].update(crop_epochs=1, crop_size=[96, 100]),
     r"config key models\.pixelformer_nano07\.train\.crop_size: pixelformer cannot take 96x100"),
    ("low-resolution size a PixelFormer cannot take",
     lambda c: c["models"]["pixelformer_nano07"]["train"].update(low_res_epochs=1, low_res_size=[100, 128]),
     r"config key models\.pixelformer_nano07\.train\.low_res_size: pixelformer cannot take 100x128"),
    ("low-resolution size a METER cannot take",
     lambda c: c["models"]["meter_xxs"]["train"].update(low_res_epochs=1, low_res_size=[96, 128]),
     r"config key models\.meter_xxs\.train\.low_res_size: meter cannot take 96x128"),
    ("low-resolution epochs without a size",
     lambda c: (c["models"]["meter_xxs"]["train"].update(low_res_epochs=1),
                c["models"]["meter_xxs"]["train"].pop("low_res_size", None)),
     r"config key models\.meter_xxs\.train\.low_res_size: required"),
    ("missing required section", drop("methods"), r"config key <top level>: 'methods' is a required property"),
    ("repeated scheme name", put("evaluation.schemes", [{"name": "pixel"}, {"name": "pixel", "replacement": "road"}]),
     r"config key evaluation\.schemes: scheme name 'pixel' is used twice"),
    ("scheme name not an identifier", put("evaluation.schemes", [{"name": "pixel@2"}]),
     r"config key evaluation\.schemes\.0\.name"),
    ("unknown scheme key", put("evaluation.schemes", [{"name": "pixel", "size": 3}]),
     r"config key evaluation\.schemes\.0\.size: unknown key"),
    ("unknown replacement", put("evaluation.schemes", [{"name": "p", "replacement": "inpaint"}]),
     r"config key evaluation\.schemes\.0\.replacement"),
    ("old top-level replacement", put("evaluation.replacement", "mean"),
     r"config key evaluation\.replacement: unknown"),
    ("nothing to match the smooth baseline to", put("methods.random_smooth.match_methods", ["random"]),
     r"config key methods\.random_smooth\.match_methods: none of \['random'\]"),
    ("claims baseline not run", drop("methods.random_smooth"), r"config key claims\.baseline: 'random_smooth' is not"),
    ("claims metric not a gap", put("claims.metric", "morf_auc_target_change"), r"config key claims\.metric"),
    ("zero margin", put("claims.af_margin", 0), r"config key claims\.af_margin"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_config_errors_name_the_key(raw_config: dict[str, Any], case: str, change: Callable, message: str) -> None:
    config = copy.deepcopy(raw_config)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


PAPER_TRAIN_DRIVES = ["2011_09_26_drive_0001", "2011_09_26_drive_0015", "2011_09_26_drive_0019",
                      "2011_09_29_drive_0004"]


@pytest.fixture()
def paper() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


def test_paper_preset_trains_the_explainer_on_real_train_frames(paper: dict[str, Any]) -> None:
    from depthxai.config import download_keys

    resolved = validate_config(paper)
    assert "explainer" in resolved["methods"]
    assert resolved["datasets"]["nyu"]["train"] == {"every": 1}
    assert resolved["datasets"]["kitti"]["train"] == {"drives": PAPER_TRAIN_DRIVES, "every": 2}
    downloads = resolved["downloads"]
    kitti_roles = resolved["datasets"]["kitti"]["downloads"]
    # the test role's pattern must not pull in the train drives, and the train role holds exactly them
    test_raw = download_keys(kitti_roles["raw"], downloads)
    train_raw = download_keys(kitti_roles["train_raw"], downloads)
    assert len(test_raw) == 28 and not set(test_raw) & set(train_raw)
    assert sorted(downloads[k]["filename"] for k in train_raw) == [f"{d}_sync.zip" for d in PAPER_TRAIN_DRIVES]
    for key in train_raw:
        drive = downloads[key]["filename"].removesuffix("_sync.zip")
        assert downloads[key]["url"] == f"https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/{drive}/{drive}_sync.zip"
        assert downloads[key]["extract_members"] == [f"{drive[:10]}/{drive}_sync/image_02/data/*"]
        assert downloads[key]["extract_dir"] == "kitti_raw"
    split = downloads[kitti_roles["train_split_file"]]
    assert split["url"].endswith("/bb0ae9f3108666328c406c500497ddedc4479891/data_splits/eigen_train_files_with_gt.txt")
    assert (split["size"], split["sha256"]) == (
        3467886, "3655308ee4a017094dc620402db3fc587d769cfbfa9a16c6d0f8de6dcbe109ec")


EXPLAINER_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("nyu without train frames", drop("datasets.nyu.train"), (r"config key datasets\.nyu\.train: methods\.explainer "
     r"trains on the train split of every dataset, and 'nyu' prepares only its test split")),
    ("kitti without train frames", drop("datasets.kitti.train"),
     r"config key datasets\.kitti\.train: methods\.explainer"),
    ("kitti train without drives", put("datasets.kitti.train", {"every": 3}),
     r"config key datasets\.kitti\.train\.drives: required"),
    ("empty drive list", put("datasets.kitti.train.drives", []), r"config key datasets\.kitti\.train\.drives: "),
    ("malformed drive", put("datasets.kitti.train.drives", ["2011_09_26_0001"]),
     r"config key datasets\.kitti\.train\.drives\.0: .*does not match"),
    ("every 0", put("datasets.nyu.train.every", 0), r"config key datasets\.nyu\.train\.every: 0 is less than"),
    ("drives for nyu", put("datasets.nyu.train.drives", PAPER_TRAIN_DRIVES),
     r"config key datasets\.nyu\.train\.drives: kitti only"),
    ("train drive without archive", put("datasets.kitti.train.drives", [*PAPER_TRAIN_DRIVES, "2011_09_26_drive_0057"]),
     r"config key datasets\.kitti\.train\.drives: drive 2011_09_26_drive_0057 has no archive"),
    ("train role missing", drop("datasets.kitti.downloads.train_raw"),
     r"config key datasets\.kitti\.downloads\.train_raw: required"),
    ("train split role missing", drop("datasets.kitti.downloads.train_split_file"),
     r"config key datasets\.kitti\.downloads\.train_split_file: required"),
    ("train drive ground truth not extracted",
     lambda c: c["downloads"]["kitti_depth_annotated"]["extract_members"].pop(),  # the last: drive 0004 of 09_29
     r"config key datasets\.kitti\.train\.drives: the ground truth of drive 2011_09_29_drive_0004 is not extracted"),
    ("train drives elsewhere", put("downloads.kitti_train_raw_2011_09_26_drive_0015.extract_dir", "kitti_train"),
     r"config key datasets\.kitti\.downloads\.train_raw: .*must share one extract_dir"),
]


@pytest.mark.parametrize(("case", "change", "message"), EXPLAINER_CASES, ids=[c[0] for c in EXPLAINER_CASES])
def test_real_train_frames_errors_name_the_key(paper: dict[str, Any], case: str, change: Callable,
                                                message: str) -> None:
    change(paper)
    with pytest.raises(ConfigError, match=message):
        validate_config(paper)


def test_train_frames_are_optional_without_the_explainer(paper: dict[str, Any], raw_config: dict[str, Any]) -> None:
    del paper["methods"]["explainer"]
    for name in ("nyu", "kitti"):
        del paper["datasets"][name]["train"]
    # the train download roles are then unused and may stay or go
    assert "train" not in validate_config(paper)["datasets"]["kitti"]
    for role in ("train_split_file", "train_raw"):
        del paper["datasets"]["kitti"]["downloads"][role]
    validate_config(paper)
    # a synthetic dataset renders its train images: `train` is refused there
    config = copy.deepcopy(raw_config)
    config["datasets"]["synthroad"]["train"] = {"every": 1}
    with pytest.raises(ConfigError, match=r"config key datasets\.synthroad\.train: only for nyu and kitti"):
        validate_config(config)


def test_explainer_needs_synthetic_train_images(raw_config: dict[str, Any]) -> None:
    # a synthetic dataset with downloaded weights but no train images
    config = copy.deepcopy(raw_config)
    config["downloads"] = {"ckpt": {"url": "https://example.org/m.pth", "filename": "m.pth"}}
    config["models"] = {"meter_xxs": {"weights": {"synthindoor": "train", "synthroad": "ckpt"}}}
    config["datasets"]["synthroad"]["n_train"] = 0
    with pytest.raises(ConfigError, match=r"config key datasets\.synthroad\.n_train: methods\.explainer trains on it"):
        validate_config(config)
    del config["methods"]["explainer"]
    assert validate_config(config)["datasets"]["synthroad"]["n_train"] == 0


def test_download_keys_make_weights_valid(raw_config: dict[str, Any]) -> None:
    config = copy.deepcopy(raw_config)
    config["downloads"] = {"meter_ckpt": {"url": "https://example.org/m.pth", "filename": "m.pth"}}
    config["models"]["meter_xxs"]["weights"]["synthroad"] = "meter_ckpt"
    resolved = validate_config(config)
    assert resolved["downloads"]["meter_ckpt"]["kind"] == "file"  # default filled inside additionalProperties
    config["downloads"]["meter_ckpt"]["sha256"] = "not-a-hash"
    with pytest.raises(ConfigError, match=r"config key downloads\.meter_ckpt\.sha256"):
        validate_config(config)


def test_section_defaults() -> None:
    evaluation = section_defaults("evaluation", {"ranking": "signed", "fidelity": {"measure": "l1"}})
    assert evaluation["ranking"] == "signed" and evaluation["schemes"][0]["replacement"] == "mean"
    assert evaluation["fidelity"] == {"measure": "l1", "resolution": "native"}
    assert evaluation["infidelity"]["n_perturb_samples"] == 16
    assert section_defaults("stats") == {"alpha": 0.05, "bootstrap_resamples": 2000, "confidence": 0.95}
    with pytest.raises(ConfigError, match=r"config key evaluation\.fractionz: unknown key"):
        section_defaults("evaluation", {"fractionz": [0.0, 0.5]})
    with pytest.raises(ConfigError, match=r"config key evaluation\.fidelity\.measure: 'kendall' is not one of"):
        section_defaults("evaluation", {"fidelity": {"measure": "kendall"}})
    with pytest.raises(ConfigError, match=r"config key evaluation\.batch_size: 0 is less than the minimum of 1"):
        section_defaults("evaluation", {"batch_size": 0})
    with pytest.raises(ConfigError, match=r"config key evaluation\.fractions: must be increasing"):
        section_defaults("evaluation", {"fractions": [0.0, 0.5, 0.2]})
    with pytest.raises(ConfigError, match=r"config key nosuch: no such section"):
        section_defaults("nosuch")


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)
    assert load_config(REPO / "config.yaml")["evaluation"]["ranking"] == "abs"
