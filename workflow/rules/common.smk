# Every Python decision of the workflow, in this order: the configuration validated; the constants of the study
# (its combinations, environments, file lists); the input functions (get_*), which name the files a rule reads;
# the param functions, which turn the config and the wildcards into command-line values.

import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Snakemake itself may run outside the environment that has depthxai installed (e.g. with --use-conda):
# the config validation only needs this checkout's package source and its YAML/JSON-schema dependencies.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from depthxai.config import (
    archive_root,
    download_keys,
    method_name,
    model_source,
    read_config_file,
    science_methods,
    stochastic_methods,
    validate_config,
)
from depthxai.errors import ConfigError

# ------------------------------------------------------------------------------------------------ validation

try:
    # Snakemake's YAML loader keeps the last of a duplicated key silently: read the files again, strictly.
    for configfile_path in workflow.configfiles:
        read_config_file(configfile_path)
    # The schema file is workflow/schemas/config.schema.yaml (the package's own copy, linked); validation fills
    # the defaults and checks the cross references a schema cannot express, naming the offending key.
    config.update(validate_config(config))
    KITTI_RAW_ROOT = archive_root(config, "kitti", "raw")
    KITTI_DEPTH_ROOT = archive_root(config, "kitti", "depth")
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None


def cuda_available():
    """Whether this Python sees a CUDA device; None where PyTorch is not importable (jobs in conda envs)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.is_available()


# A run that asks for a GPU on a machine without one fails in its first model job, after rendering and training:
# refuse it now. Only where the jobs run here (not dry runs, not submissions to a cluster from a login node).
if config["device"] == "cuda" and workflow.local_exec and not workflow.dryrun and cuda_available() is False:
    raise WorkflowError(
        "invalid configuration: config key device: 'cuda', but this machine has no CUDA device that PyTorch can use; "
        "set device: cpu (or auto), or run on a GPU machine"
    )

# ------------------------------------------------------------------------------------------------ constants

# Rules call `python -m depthxai`: the package of this checkout, also inside a conda env (which provides the
# dependencies only). (Doubled braces: Snakemake formats the prefix like a shell command.)
SRC = Path(workflow.basedir) / "src"
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(SRC))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# The study's combinations. A model is studied on the datasets its weights are given for. Its source: the registry
# (trained here or downloaded), or hf:/module: (depthxai.models.adapters), which are never trained here (the config
# validation refuses `train` for them) and may predict relative depth (aligned to the ground truth, ALIGNMENT_JSON).
DATASETS = sorted(config["datasets"])
SYNTHETIC = sorted(d for d, spec in config["datasets"].items() if spec["source"] == "synthetic")
MODELS = sorted(config["models"])
MODEL_SOURCES = {m: model_source(spec) for m, spec in config["models"].items()}
METHODS = sorted(config["methods"])
SHARDS = [str(i) for i in range(config["shards"])]
PAIRS = sorted((d, m) for m, spec in config["models"].items() for d in spec["weights"])
PAIR_PATHS = [f"{d}/{m}" for d, m in PAIRS]
TARGET_JSON = json.dumps(config["attribution"]["target"], sort_keys=True)
# The evaluation settings of the evaluate command; the alignment of relative predictions goes, as --alignment, only
# to the jobs of hf:/module: models (registry models are metric), so that their commands stay as they were.
EVALUATION_JSON = json.dumps({k: v for k, v in config["evaluation"].items() if k != "alignment"}, sort_keys=True)
ALIGNMENT_JSON = json.dumps(config["evaluation"]["alignment"], sort_keys=True)
STOCHASTIC_METHODS = stochastic_methods(config)
SMOOTHNESS_METHODS = sorted(
    m for m in config["methods"].get("random_smooth", {}).get("match_methods", []) if m in config["methods"]
)
SCIENCE_METHODS_JSON = json.dumps(science_methods(config), sort_keys=True)
SANITY_EXPLAINER = "explainer" in config["methods"] and config["science"]["sanity"]["explainer"]
FIGURE_FORMATS = config["report"]["formats"]
STUDY_TABLES = ["table1", "table1_depth", "table2", "accuracy"]
SCIENCE_TABLES = ["randomisation", "localisation", "reliability"]
SCIENCE_FIGURES = ["randomisation", "violins", "method_correlation"]

# Test-retest: repeat r of a factor reruns with seed + r; the training seed only where the model is trained in the
# DAG (official checkpoints have no seed).
REPEATS = [str(r) for r in range(1, config["science"]["retest"]["repeats"])]
RETRAIN_PAIRS = sorted(
    (d, m)
    for d, m in PAIRS
    if config["science"]["retest"]["training_seed"] and config["models"][m]["weights"][d] == "train"
)
RETRAIN = "results/science/retrain/{dataset}/{model}/repeat-{repeat}"  # one training-seed repeat's folder

# Downloads of the paper preset.
DOWNLOADS = config["downloads"]
FILE_DOWNLOADS = sorted(spec["filename"] for spec in DOWNLOADS.values() if spec["kind"] == "file")
ARCHIVE_DOWNLOADS = sorted(key for key, spec in DOWNLOADS.items() if spec["kind"] != "file")
DOWNLOADS_DIR = f"{config['resources_dir']}/downloads"

# Software environments (conda: directives, used with --sdm conda): the CUDA build of PyTorch for the model rules
# when the config asks for a GPU, the CPU build otherwise; GPUs per model job (the SLURM executor turns it into
# --gpus; a local run can serialise GPU jobs with --resources gpu=1).
ENVS = Path(workflow.basedir) / "envs"
USES_GPU = config["device"] != "cpu"
DATA_ENV = str(ENVS / "data.yaml")
STATS_ENV = str(ENVS / "stats.yaml")
TORCH_ENV = str(ENVS / ("torch-cuda.yaml" if USES_GPU else "torch.yaml"))
GPUS_PER_JOB = 1 if USES_GPU else 0

# The tidy results of every (dataset, model, method, shard), merged by the evaluate stage.
SCORE_FILES = [
    f"results/evaluation/{p}/{meth}/shard-{s}.scores.csv" for p in PAIR_PATHS for meth in METHODS for s in SHARDS
]
CURVE_FILES = [
    f"results/evaluation/{p}/{meth}/shard-{s}.curves.csv" for p in PAIR_PATHS for meth in METHODS for s in SHARDS
]
ACCURACY_FILES = [f"results/predictions/{p}/shard-{s}.accuracy.csv" for p in PAIR_PATHS for s in SHARDS]
RETEST_SCORE_FILES = [
    f"results/science/retest/{d}/{m}/{meth}/repeat-{r}/shard-{s}.scores.csv"
    for d, m in PAIRS
    for meth in METHODS
    for r in REPEATS
    for s in SHARDS
] + [
    f"results/science/retrain/{d}/{m}/repeat-{r}/evaluation/{meth}/shard-{s}.scores.csv"
    for d, m in RETRAIN_PAIRS
    for meth in METHODS
    for r in REPEATS
    for s in SHARDS
]
RETEST_TABLE = ["results/science/retest.csv"] if REPEATS else []
TRAINING_SEED_RETEST = RETEST_TABLE if RETRAIN_PAIRS else []  # widens Table 1's paired intervals
OBJECT_SHIFT_FILES = [f"results/science/{d}/{m}/object_shift.csv" for d, m in PAIRS if d in SYNTHETIC]


def get_final_output():
    outputs = [
        "results/evaluation/scores.csv",
        "results/evaluation/curves.csv",
        "results/evaluation/accuracy.csv",
        "results/stats/summary.csv",
        "results/stats/friedman.csv",
        "results/stats/wilcoxon.csv",
        "results/stats/paired.csv",
    ]
    outputs += expand("results/tables/{table}.{ext}", table=STUDY_TABLES, ext=["csv", "md", "tex"])
    outputs += expand("results/figures/figure1_{pair}.{ext}", pair=[f"{d}_{m}" for d, m in PAIRS], ext=FIGURE_FORMATS)
    outputs += expand("results/figures/{fig}.{ext}", fig=["figure2", "figure3"], ext=FIGURE_FORMATS)
    outputs += [f"results/models/{p}/card.json" for p in PAIR_PATHS]
    if config["science"]["enabled"]:
        outputs += ["results/claims.md", "results/claims.csv"]
        outputs += expand("results/figures/{fig}.{ext}", fig=SCIENCE_FIGURES, ext=FIGURE_FORMATS)
        outputs += expand("results/tables/{table}.{ext}", table=SCIENCE_TABLES, ext=["csv", "md", "tex"])
    return outputs


# ------------------------------------------------------------------------------------------------ input functions


def download_path(key):
    return f"{DOWNLOADS_DIR}/{DOWNLOADS[key]['filename']}"


def download_target(key):
    """The file to depend on for a download: the file itself, or the extraction flag of an archive."""
    if DOWNLOADS[key]["kind"] == "file":
        return download_path(key)
    return f"{DOWNLOADS_DIR}/{key}.extracted"


def get_dataset_downloads(role):
    """Input function factory: the download targets of one role of a real dataset (config REAL_DATASET_ROLES)."""

    def targets(wildcards):
        dataset = "nyu" if role in ("labeled", "splits") else "kitti"
        spec = config["datasets"][dataset]
        if role.startswith("train_") and "train" not in spec:
            return []  # no train frames asked for: their downloads are not needed
        return [download_target(k) for k in download_keys(spec["downloads"][role], DOWNLOADS)]

    return targets


def get_weights(wildcards):
    """Trained inside the DAG, or downloaded (verified) into resources_dir; a module: model's may also be a file of
    the user's; an hf: model has none (its weights come with the hub id or folder)."""
    source = config["models"][wildcards.model]["weights"][wildcards.dataset]
    if source == "train":
        return f"results/models/{wildcards.dataset}/{wildcards.model}/weights.pt"
    if source is None:
        return []
    if source in DOWNLOADS:
        return download_path(source)
    return source


def get_model_accuracy(wildcards):
    return expand("results/predictions/{dataset}/{model}/shard-{shard}.accuracy.csv", **wildcards, shard=SHARDS)


def get_method_inputs(wildcards):
    """Files a method needs besides the model: the trained explainer; the measured smoothness."""
    return _method_inputs(wildcards, f"results/models/{wildcards.dataset}/{wildcards.model}", "results/attributions")


def get_retrain_method_inputs(wildcards):
    folder = RETRAIN.format(**wildcards)
    return _method_inputs(wildcards, folder, f"{folder}/attributions")


def _method_inputs(wildcards, model_folder, maps_folder):
    if wildcards.method == "explainer":
        return [f"{model_folder}/explainer.pt"]
    if wildcards.method == "random_smooth" and smooth_baseline_measured():
        return [smoothness_file(wildcards, maps_folder)]
    return []


def smoothness_file(wildcards, maps_folder="results/attributions"):
    if maps_folder == "results/attributions":
        return f"{maps_folder}/{wildcards.dataset}/{wildcards.model}/smoothness.json"
    return f"{maps_folder}/smoothness.json"


def smooth_baseline_measured():
    """Whether the smoothness-matched baseline takes its correlation length from the methods' maps (auto)."""
    return config["methods"].get("random_smooth", {}).get("correlation_length") == "auto"


def get_smoothness_maps(wildcards):
    """The maps whose correlation length the smoothness-matched baseline takes (config match_methods)."""
    return expand(
        "results/attributions/{dataset}/{model}/{method}/shard-{shard}.npz",
        **wildcards,
        method=SMOOTHNESS_METHODS,
        shard=SHARDS,
    )


def get_retrain_smoothness_maps(wildcards):
    return expand(
        f"{RETRAIN}/attributions/{{method}}/shard-{{shard}}.npz", **wildcards, method=SMOOTHNESS_METHODS, shard=SHARDS
    )


def get_qualitative_inputs(wildcards):
    """Figure 1's files; an hf:/module: model's card is read from the model itself (module: from its weights)."""
    d, m = wildcards.dataset, wildcards.model
    inputs = {
        "data": f"results/data/{d}",
        "predictions": expand(f"results/predictions/{d}/{m}/shard-{{shard}}.npz", shard=SHARDS),
        "attributions": [f"results/attributions/{d}/{m}/{meth}/shard-{s}.npz" for meth in METHODS for s in SHARDS],
    }
    if MODEL_SOURCES[m] != "registry":
        inputs["weights"] = get_weights(wildcards)
    return inputs


def get_sanity_explainer(wildcards):
    """The trained explainer, which the sanity check trains again against the fully randomised model."""
    return [f"results/models/{wildcards.dataset}/{wildcards.model}/explainer.pt"] if SANITY_EXPLAINER else []


def get_repeat_attributions(wildcards):
    """Stochastic methods get maps of their own per repeat; the others reuse the main maps (computed once)."""
    w = wildcards
    if w.method in STOCHASTIC_METHODS:
        return f"results/science/retest/{w.dataset}/{w.model}/{w.method}/repeat-{w.repeat}/shard-{w.shard}.npz"
    return f"results/attributions/{w.dataset}/{w.model}/{w.method}/shard-{w.shard}.npz"


# ------------------------------------------------------------------------------------------------ param functions


def model_name(wildcards):
    """The registry name <arch>_<variant>_<dataset> of a (dataset, model) pair."""
    return f"{wildcards.model}_{wildcards.dataset}"


def model_options(wildcards, input):
    """How a job names its model: a registry model by <arch>_<variant>_<dataset> and its weights; an hf:/module:
    model by its source, its weights (module:) and its card overrides (models.<id>.card, as --card JSON)."""
    spec = config["models"][wildcards.model]
    if "source" not in spec:
        return ["--model", model_name(wildcards), "--weights", str(input.weights)]
    options = ["--model", spec["source"]]
    if input.weights:
        options += ["--weights", str(input.weights)]
    if spec.get("card"):
        options += ["--card", json.dumps(spec["card"], sort_keys=True)]
    return options


def scored_model_options(wildcards, input):
    """:func:`model_options` of the jobs that compare predictions with metres (predict, evaluate): an hf:/module: model
    may predict relative depth, which they align to the ground truth as evaluation.alignment says."""
    options = model_options(wildcards, input)
    if MODEL_SOURCES[wildcards.model] != "registry":
        options += ["--alignment", ALIGNMENT_JSON]
    return options


def panel_model_options(wildcards, input):
    """Figure 1's model: a registry name, or an hf:/module: model (its card from the model) with its id as label and
    the alignment that shows a relative prediction in metres."""
    if MODEL_SOURCES[wildcards.model] == "registry":
        return ["--model", model_name(wildcards)]
    return [*scored_model_options(wildcards, input), "--arch", wildcards.model]


def weight_source(wildcards):
    """'train' (trained in the DAG), the downloads key of the model's checkpoint for this dataset, a module: model's
    weights file, or an hf: model's source."""
    spec = config["models"][wildcards.model]
    return spec["weights"][wildcards.dataset] or spec["source"]


def method_options(wildcards):
    """--method of an attribute job: depthxai's own method by its id; a Captum method by its name (captum:...), the
    id recorded with --method-id (the maps, scores and tables carry the id)."""
    name = method_name(config, wildcards.method)
    return ["--method", name] + (["--method-id", wildcards.method] if name != wildcards.method else [])


def dataset_param(key):
    """Param function factory: the value of datasets.<dataset>.<key> (a list stays a list: one quoted word each)."""

    def value(wildcards):
        return config["datasets"][wildcards.dataset][key]

    return value


def output_dir(wildcards, output):
    """The folder of a rule's first output (derived from the output, never written twice)."""
    return str(Path(output[0]).parent)


def output_stem(wildcards, output):
    """A rule's first output without its extension (a figure's stem: the formats add theirs)."""
    return str(Path(output[0]).with_suffix(""))


def download_spec_by_filename(wildcards):
    key = next(k for k, spec in DOWNLOADS.items() if spec["filename"] == wildcards.filename)
    return json.dumps(dict(DOWNLOADS[key], key=key), sort_keys=True)


def download_spec_by_key(wildcards):
    return json.dumps(dict(DOWNLOADS[wildcards.key], key=wildcards.key), sort_keys=True)


def mirror_arg(wildcards):
    return ["--mirror", config["mirror"]] if config["mirror"] else []


def dataset_ids_arg(dataset):
    ids = config["datasets"].get(dataset, {}).get("ids")
    return ["--ids", *ids] if ids else []


def nyu_train_arg(wildcards):
    """prepare-nyu's train selection (datasets.nyu.train): none, or every k-th official train frame."""
    train = config["datasets"]["nyu"].get("train")
    return ["--train-every", train["every"]] if train else []


def kitti_train_args(wildcards, input):
    """prepare-kitti's train selection (datasets.kitti.train): the Eigen train split file, drives and step.
    The train drives extract into the raw root of the test drives (checked by the config validation)."""
    train = config["datasets"]["kitti"].get("train")
    if not train:
        return []
    return [
        "--train-split-file",
        *input.train_split_file,
        "--train-drives",
        *train["drives"],
        "--train-every",
        train["every"],
    ]


def retest_factor(output):
    """What a job repeats, from where it writes: the analysis seed (results/science/retest), the training seed
    (results/science/retrain), or nothing (the main run)."""
    path = Path(output[0]).as_posix()
    for folder, factor in (("results/science/retest/", "analysis_seed"), ("results/science/retrain/", "training_seed")):
        if path.startswith(folder):
            return factor
    return None


def analysis_seed(wildcards, output):
    """The seed of attribution and evaluation noise: base seed + r in analysis-seed repeat r, the base seed
    elsewhere (a training-seed repeat changes the training seed only)."""
    return config["seed"] + (int(wildcards.repeat) if retest_factor(output) == "analysis_seed" else 0)


def training_seed(wildcards, output):
    """The seed of a model's and an explainer's training: base seed + r in training-seed repeat r."""
    return config["seed"] + (int(wildcards.repeat) if retest_factor(output) == "training_seed" else 0)


def train_params(wildcards, output):
    """The model's training settings (config models.<model>.train) with its training seed, as JSON."""
    return json.dumps(dict(config["models"][wildcards.model].get("train", {}), seed=training_seed(wildcards, output)))


def method_params(wildcards, input):
    """The method's parameters as JSON; the explainer's are its trained network, the smoothness-matched baseline's
    the correlation length measured on this model's maps (with auto): both files are inputs of the rule."""
    if wildcards.method == "explainer":
        return json.dumps({"weights": input.method_inputs[0]})
    params = dict(config["methods"][wildcards.method])
    if method_name(config, wildcards.method) != wildcards.method:
        params.pop("method")  # a Captum method's class: passed as --method (method_options)
    if wildcards.method == "random_smooth":
        params.pop("match_methods")
        if params["correlation_length"] == "auto":
            params.pop("correlation_length")
            params["correlation_length_file"] = input.method_inputs[0]
    return json.dumps(params, sort_keys=True)


def sanity_explainer_args(wildcards, input):
    if not SANITY_EXPLAINER:
        return []
    settings = json.dumps(config["methods"]["explainer"], sort_keys=True)
    return ["--explainer-weights", *input.explainer, "--explainer", settings]


def retest_labels(wildcards, output):
    """The evaluate command's labels of a test-retest row (:func:`retest_factor`); none for the main run."""
    factor = retest_factor(output)
    return ["--repeat", wildcards.repeat, "--retest-factor", factor] if factor else []


def json_param(section):
    return json.dumps(config[section], sort_keys=True)
