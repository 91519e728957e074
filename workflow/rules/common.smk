# Every Python decision of the workflow: config validation, the study's combinations, input functions.

import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Snakemake itself may run outside the environment that has depthxai installed (e.g. with --use-conda):
# the config validation only needs this checkout's package source and its YAML/JSON-schema dependencies.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from depthxai.config import download_keys, read_config_file, stochastic_methods, validate_config
from depthxai.errors import ConfigError

def weight_source_of(dataset, model):
    """'train' (trained in the DAG) or the downloads key of the model's checkpoint for this dataset."""
    return config["models"][model]["weights"][dataset]


try:
    # Snakemake's YAML loader keeps the last of a duplicated key silently: read the files again, strictly.
    for configfile_path in workflow.configfiles:
        read_config_file(configfile_path)
    # The schema file is workflow/schemas/config.schema.yaml (the package's own copy, linked); validation fills
    # the defaults and checks the cross references a schema cannot express, naming the offending key.
    config.update(validate_config(config))
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

# Rules call `python -m depthxai`: the package of this checkout, also inside a conda env (which provides the
# dependencies only).
SRC = Path(workflow.basedir) / "src"
# (doubled braces: Snakemake formats the prefix like a shell command)
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(SRC))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

DATASETS = sorted(config["datasets"])
SYNTHETIC = sorted(d for d, spec in config["datasets"].items() if spec["source"] == "synthetic")
METHODS = sorted(config["methods"])
SHARDS = [str(i) for i in range(config["shards"])]
# (dataset, arch) pairs of the study: an architecture is studied on the datasets its weights are given for.
PAIRS = sorted((d, m) for m, spec in config["models"].items() for d in spec["weights"])
MODELS = sorted(config["models"])
TARGET_JSON = json.dumps(config["attribution"]["target"], sort_keys=True)
PAIR_PATHS = [f"{d}/{m}" for d, m in PAIRS]
STOCHASTIC_METHODS = stochastic_methods(config)
REPEATS = [str(r) for r in range(1, config["science"]["retest"]["repeats"])]
# Test-retest over the training seed: the pairs whose model is trained in the DAG (official checkpoints have no seed).
RETRAIN_PAIRS = sorted(
    (d, m) for d, m in PAIRS if config["science"]["retest"]["training_seed"] and weight_source_of(d, m) == "train"
)

# Software environments of the model rules (conda: directives, used with --sdm conda): the CUDA build of PyTorch
# when the config asks for a GPU, the CPU build otherwise (envs/torch-cuda.yaml, envs/torch.yaml).
USES_GPU = config["device"] != "cpu"
TORCH_ENV = str(Path(workflow.basedir) / "envs" / ("torch-cuda.yaml" if USES_GPU else "torch.yaml"))
# GPUs per model job (predict, attribute, evaluate): the SLURM executor turns it into --gpus; a local run can
# serialise GPU jobs with --resources gpu=1.
GPUS_PER_JOB = 1 if USES_GPU else 0



def model_name(wildcards):
    """The registry name <arch>_<variant>_<dataset> of a (dataset, model) pair."""
    return f"{wildcards.model}_{wildcards.dataset}"


def dataset_param(key):
    """Param function factory: the value of datasets.<dataset>.<key> (a list stays a list: one quoted argument each)."""

    def value(wildcards):
        return config["datasets"][wildcards.dataset][key]

    return value


def weight_source(wildcards):
    return weight_source_of(wildcards.dataset, wildcards.model)


def get_weights(wildcards):
    """Trained inside the DAG, or downloaded (verified) into resources_dir."""
    source = weight_source(wildcards)
    if source == "train":
        return f"results/models/{wildcards.dataset}/{wildcards.model}/weights.pt"
    return download_path(source)


def download_path(key):
    return f"{config['resources_dir']}/downloads/{config['downloads'][key]['filename']}"


DOWNLOADS = config["downloads"]
FILE_DOWNLOADS = sorted(spec["filename"] for spec in DOWNLOADS.values() if spec["kind"] == "file")
ARCHIVE_DOWNLOADS = sorted(key for key, spec in DOWNLOADS.items() if spec["kind"] != "file")


def output_dir(wildcards, output):
    """The folder of a rule's first output (a param derived from the output, not hard-coded)."""
    return str(Path(output[0]).parent)


def download_target(key):
    """The input to depend on for a download: the file itself, or the extraction flag of an archive."""
    if DOWNLOADS[key]["kind"] == "file":
        return download_path(key)
    return f"{config['resources_dir']}/downloads/{key}.extracted"


def download_spec_by_filename(wildcards):
    key = next(k for k, spec in DOWNLOADS.items() if spec["filename"] == wildcards.filename)
    return json.dumps(dict(DOWNLOADS[key], key=key), sort_keys=True)


def download_spec_by_key(wildcards):
    return json.dumps(dict(DOWNLOADS[wildcards.key], key=wildcards.key), sort_keys=True)


def mirror_arg(wildcards):
    return ["--mirror", config["mirror"]] if config["mirror"] else []


def dataset_download(role):
    """Input function factory: the download targets of one role of a real dataset (see REAL_DATASET_ROLES)."""

    def targets(wildcards):
        dataset = "nyu" if role in ("labeled", "splits") else "kitti"
        spec = config["datasets"][dataset]
        if role.startswith("train_") and "train" not in spec:
            return []  # no train frames asked for: their downloads are not needed
        keys = download_keys(spec["downloads"][role], DOWNLOADS)
        return [download_target(k) for k in keys]

    return targets


def archive_root(dataset, role):
    """The folder an archive role of a dataset extracts into (all its archives must share it)."""
    if dataset not in config["datasets"]:
        return ""
    keys = download_keys(config["datasets"][dataset]["downloads"][role], DOWNLOADS)
    folders = {DOWNLOADS[k].get("extract_dir", k) for k in keys}
    if len(folders) != 1:
        raise WorkflowError(f"config key datasets.{dataset}.downloads.{role}: archives extract into {sorted(folders)}; "
                            "they must share one extract_dir")
    return f"{config['resources_dir']}/downloads/{folders.pop()}"


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
    return ["--train-split-file", *input.train_split_file, "--train-drives", *train["drives"],
            "--train-every", train["every"]]


def training_settings(model, seed):
    """The model's training settings (config models.<model>.train) with the seed, as JSON."""
    return json.dumps(dict(config["models"][model].get("train", {}), seed=seed))


def train_params(wildcards):
    return training_settings(wildcards.model, config["seed"])


def method_params(wildcards):
    """The method's parameters as JSON; the explainer's are the trained network of this (dataset, model), the
    smoothness-matched baseline's the correlation length measured on this (dataset, model)'s maps (with auto)."""
    return _method_params(wildcards, explainer_weights(wildcards), smoothness_file(wildcards))


def _method_params(wildcards, explainer, smoothness):
    if wildcards.method == "explainer":
        return json.dumps({"weights": explainer})
    params = dict(config["methods"][wildcards.method])
    if wildcards.method == "random_smooth":
        params.pop("match_methods")
        if params.pop("correlation_length") == "auto":
            params["correlation_length_file"] = smoothness
        else:
            params["correlation_length"] = config["methods"]["random_smooth"]["correlation_length"]
    return json.dumps(params, sort_keys=True)


def explainer_weights(wildcards):
    return f"results/models/{wildcards.dataset}/{wildcards.model}/explainer.pt"


def smoothness_file(wildcards):
    return f"results/attributions/{wildcards.dataset}/{wildcards.model}/smoothness.json"


def smooth_baseline_measured():
    """Whether the smoothness-matched baseline takes its correlation length from the methods' maps (auto)."""
    return config["methods"].get("random_smooth", {}).get("correlation_length") == "auto"


SMOOTHNESS_METHODS = sorted(
    m for m in config["methods"].get("random_smooth", {}).get("match_methods", []) if m in config["methods"]
)


def get_method_inputs(wildcards):
    """Files a method needs besides the model: the trained explainer; the measured smoothness."""
    if wildcards.method == "explainer":
        return [explainer_weights(wildcards)]
    if wildcards.method == "random_smooth" and smooth_baseline_measured():
        return [smoothness_file(wildcards)]
    return []


def get_smoothness_maps(wildcards):
    """The maps whose correlation length the smoothness-matched baseline takes (config match_methods)."""
    return [f"results/attributions/{wildcards.dataset}/{wildcards.model}/{m}/shard-{s}.npz"
            for m in SMOOTHNESS_METHODS for s in SHARDS]


def json_param(section):
    return json.dumps(config[section], sort_keys=True)


def shard_files(pattern, **fixed):
    return expand(pattern, shard=SHARDS, **fixed)


def get_scores(wildcards=None):
    return [f"results/evaluation/{d}/{m}/{meth}/shard-{s}.scores.csv" for d, m in PAIRS for meth in METHODS for s in SHARDS]


def get_curves(wildcards=None):
    return [f"results/evaluation/{d}/{m}/{meth}/shard-{s}.curves.csv" for d, m in PAIRS for meth in METHODS for s in SHARDS]


def get_accuracy(wildcards=None):
    return [f"results/predictions/{d}/{m}/shard-{s}.accuracy.csv" for d, m in PAIRS for s in SHARDS]


def get_model_accuracy(wildcards):
    return shard_files(f"results/predictions/{wildcards.dataset}/{wildcards.model}/shard-{{shard}}.accuracy.csv")


def get_qualitative_inputs(wildcards):
    d, m = wildcards.dataset, wildcards.model
    return {
        "data": f"results/data/{d}",
        "predictions": shard_files(f"results/predictions/{d}/{m}/shard-{{shard}}.npz"),
        "attributions": [f"results/attributions/{d}/{m}/{meth}/shard-{s}.npz" for meth in METHODS for s in SHARDS],
    }


def science_methods(wildcards):
    """The configured methods for the science checks; IG with fewer path points (its cost x the cascade). The
    explainer is retrained there (science.sanity.explainer), and random_smooth is left out: like random, its maps do
    not depend on the model, so the checks' known answers hold for it by construction."""
    methods = {name: dict(params) for name, params in config["methods"].items()
               if name not in ("explainer", "random_smooth")}
    if "ig" in methods:
        methods["ig"]["n_steps"] = config["science"]["sanity"]["ig_steps"]
    return json.dumps(methods, sort_keys=True)


SANITY_EXPLAINER = "explainer" in config["methods"] and config["science"]["sanity"]["explainer"]


def get_sanity_explainer(wildcards):
    """The trained explainer, which the sanity check trains again against the fully randomised model."""
    return [explainer_weights(wildcards)] if SANITY_EXPLAINER else []


def sanity_explainer_args(wildcards, input):
    if not SANITY_EXPLAINER:
        return []
    return ["--explainer-weights", *input.explainer, "--explainer",
            json.dumps(config["methods"]["explainer"], sort_keys=True)]


def repeat_seed(wildcards):
    """Repeat r of a test-retest factor runs its stochastic parts (analysis or training) with base seed + r."""
    return config["seed"] + int(wildcards.repeat)


def get_repeat_attributions(wildcards):
    """Stochastic methods get maps of their own per repeat; the others reuse the main maps (computed once)."""
    w = wildcards
    if w.method in STOCHASTIC_METHODS:
        return f"results/science/retest/{w.dataset}/{w.model}/{w.method}/repeat-{w.repeat}/shard-{w.shard}.npz"
    return f"results/attributions/{w.dataset}/{w.model}/{w.method}/shard-{w.shard}.npz"


def retrain_dir(wildcards):
    """The folder of one training-seed repeat of a (dataset, model) pair: weights, explainer, predictions, maps."""
    return f"results/science/retrain/{wildcards.dataset}/{wildcards.model}/repeat-{wildcards.repeat}"


def retrain_train_params(wildcards):
    """The model's training settings, seeded with base seed + r (everything else as in the main run)."""
    return training_settings(wildcards.model, repeat_seed(wildcards))


def retrain_method_params(wildcards):
    """As method_params, but the explainer and the measured smoothness are this repeat's."""
    return _method_params(wildcards, f"{retrain_dir(wildcards)}/explainer.pt",
                          f"{retrain_dir(wildcards)}/attributions/smoothness.json")


def get_retrain_method_inputs(wildcards):
    if wildcards.method == "explainer":
        return [f"{retrain_dir(wildcards)}/explainer.pt"]
    if wildcards.method == "random_smooth" and smooth_baseline_measured():
        return [f"{retrain_dir(wildcards)}/attributions/smoothness.json"]
    return []


def get_retrain_smoothness_maps(wildcards):
    return [f"{retrain_dir(wildcards)}/attributions/{m}/shard-{s}.npz" for m in SMOOTHNESS_METHODS for s in SHARDS]


def get_training_seed_retest(wildcards=None):
    """The test-retest table when it holds training-seed repeats (they widen Table 1's paired intervals)."""
    return ["results/science/retest.csv"] if REPEATS and RETRAIN_PAIRS else []


def retest_labels(factor):
    """Param factory: the evaluate command's labels of a test-retest row (the main run has none)."""

    def labels(wildcards):
        return ["--repeat", wildcards.repeat, "--retest-factor", factor]

    return labels


def get_retest_scores(wildcards=None):
    analysis = [f"results/science/retest/{d}/{m}/{meth}/repeat-{r}/shard-{s}.scores.csv"
                for d, m in PAIRS for meth in METHODS for r in REPEATS for s in SHARDS]
    training = [f"results/science/retrain/{d}/{m}/repeat-{r}/evaluation/{meth}/shard-{s}.scores.csv"
                for d, m in RETRAIN_PAIRS for meth in METHODS for r in REPEATS for s in SHARDS]
    return analysis + training


def get_retest_table(wildcards=None):
    return ["results/science/retest.csv"] if REPEATS else []


def get_object_shift(wildcards=None):
    return [f"results/science/{d}/{m}/object_shift.csv" for d, m in PAIRS if d in SYNTHETIC]


STUDY_TABLES = ["table1", "table1_depth", "table2", "accuracy"]


def figure_formats():
    return config["report"]["formats"]


def get_final_output():
    outputs = [
        "results/evaluation/scores.csv",
        "results/evaluation/curves.csv",
        "results/evaluation/accuracy.csv",
        "results/stats/summary.csv",
        "results/stats/friedman.csv",
        "results/stats/wilcoxon.csv",
    ]
    outputs += expand("results/tables/{table}.{ext}", table=STUDY_TABLES, ext=["csv", "md", "tex"])
    outputs += expand("results/figures/figure1_{pair}.{ext}", pair=[f"{d}_{m}" for d, m in PAIRS], ext=figure_formats())
    outputs += expand("results/figures/{fig}.{ext}", fig=["figure2", "figure3"], ext=figure_formats())
    outputs += [f"results/models/{d}/{m}/card.json" for d, m in PAIRS]
    if config["science"]["enabled"]:
        outputs += ["results/claims.md", "results/claims.csv"]
        outputs += expand("results/figures/{fig}.{ext}", fig=["randomisation", "violins", "method_correlation"],
                          ext=figure_formats())
        outputs += expand("results/tables/{table}.{ext}", table=["randomisation", "localisation", "reliability"],
                          ext=["csv", "md", "tex"])
    return outputs
