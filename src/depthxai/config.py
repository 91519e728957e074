"""Loading and validating the workflow configuration.

The JSON schema (``schemas/config.schema.yaml``, also reached as ``workflow/schemas/config.schema.yaml``)
is the single definition of every key, type, range (every count and size has an upper bound) and default.
:func:`validate_config` first bounds what it will look at (:func:`check_values`: at most
:data:`MAX_CONFIG_NODES` values once YAML aliases are expanded, finite numbers only, no control characters in any
key or string), then applies the schema with defaults filled in, then checks what a schema cannot express (cross
references between sections), and raises :class:`~depthxai.errors.ConfigError` naming the offending key, with
a bounded excerpt of the value. :func:`read_config_file` reads a YAML file strictly: a key given twice is an
error (PyYAML would keep the last one silently).
"""

from __future__ import annotations

import copy
import fnmatch
import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from depthxai.errors import ConfigError

SCHEMA_RESOURCE = "schemas/config.schema.yaml"

#: Values a configuration may hold once YAML aliases are expanded (the default config has about 200): a handful
#: of aliases can stand for billions of values, which validation would otherwise walk one by one.
MAX_CONFIG_NODES = 100_000
#: Characters of a value quoted in an error message.
EXCERPT_CHARS = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def excerpt(value: Any, limit: int = EXCERPT_CHARS, depth: int = 3) -> str:
    """``repr(value)`` cut to ``limit`` characters, looking at no more than 8 items of at most ``depth`` levels (never
    the whole of a huge value)."""
    if isinstance(value, (list, tuple, Mapping)) and depth == 0:
        text = "[...]" if not isinstance(value, Mapping) else "{...}"
    elif isinstance(value, Mapping):
        parts = [f"{k!r}: {excerpt(v, limit, depth - 1)}" for k, v in list(value.items())[:8]]
        text = "{" + ", ".join(parts) + (f", ... ({len(value)} keys)" if len(value) > 8 else "") + "}"
    elif isinstance(value, (list, tuple)):
        parts = [excerpt(v, limit, depth - 1) for v in list(value[:8])]
        text = "[" + ", ".join(parts) + (f", ... ({len(value)} items)" if len(value) > 8 else "") + "]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expanded_size(value: Any, memo: dict[int, int], depth: int = 0) -> int:
    """Values in ``value`` with shared sub-trees (YAML aliases) counted every time they occur; linear in the number
    of distinct objects (``memo`` by id)."""
    if depth > 64:
        raise ConfigError("config: nested more than 64 levels deep")
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, Mapping):
        size = 1 + sum(_expanded_size(v, memo, depth + 1) for v in value.values())
    elif isinstance(value, (list, tuple)):
        size = 1 + sum(_expanded_size(v, memo, depth + 1) for v in value)
    else:
        size = 1
    memo[key] = size
    return size


def check_values(config: Mapping[str, Any]) -> None:
    """Bound and sanitise the raw configuration before the schema looks at it (see the module docstring).

    Raises:
        ConfigError: naming the key: too many values (expanded aliases), a non-finite number (YAML's ``.nan`` and
            ``.inf`` are valid floats), or a control character (a newline, a tab, NUL...) in a key or a string.
    """
    memo: dict[int, int] = {}
    if _expanded_size(config, memo) > MAX_CONFIG_NODES:
        path: list[str] = []
        node: Any = config
        while isinstance(node, Mapping) and node:  # follow the largest branch of keys down to the culprit
            name, child = max(node.items(), key=lambda item: memo.get(id(item[1]), 1))
            path.append(str(name))
            node = child
        raise ConfigError(f"config key {_key_path(path)}: holds {memo[id(config)]:,} values once YAML aliases are "
                          f"expanded, more than the {MAX_CONFIG_NODES:,} a configuration may hold: "
                          f"{excerpt(node)}")
    stack: list[tuple[list[str], Any]] = [([], config)]
    seen: set[int] = set()
    while stack:
        path, value = stack.pop()
        if isinstance(value, (Mapping, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for name, child in items:
                if isinstance(name, str) and _CONTROL.search(name):
                    raise ConfigError(f"config key {_key_path(path)}: the key {excerpt(name)} contains a control "
                                      "character (a newline, tab or other invisible character)")
                stack.append(([*path, str(name)], child))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {_key_path(path)}: {value} is not a finite number")
        elif isinstance(value, str) and _CONTROL.search(value):
            raise ConfigError(f"config key {_key_path(path)}: {excerpt(value)} contains a control character (a "
                              "newline, tab or other invisible character)")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{key_node.start_mark.name}, line {key_node.start_mark.line + 1}: key {key!r} is "
                                  f"given twice in one mapping (first on line {seen[key] + 1}); YAML would keep "
                                  "the last one silently")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> Any:
    """Parse a YAML config file strictly (:class:`_StrictLoader`), with one-line errors naming the file.

    Raises:
        ConfigError: the file is missing, a directory, unreadable, not valid YAML, or gives a key twice.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        with path.open(encoding="utf-8") as stream:  # a file object: error marks name the file
            return yaml.load(stream, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_schema() -> dict[str, Any]:
    """The configuration schema as a dict."""
    text = resources.files("depthxai").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


def _key_path(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "<top level>"


def _with_defaults(validator_class: type[jsonschema.protocols.Validator]) -> type[jsonschema.protocols.Validator]:
    """A validator that fills ``default`` values of properties into the instance as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, Mapping) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the schema, fill defaults, check cross references.

    Returns:
        A new dict with every default filled in.

    Raises:
        ConfigError: naming the first offending key (dotted path) and what is wrong with it.
    """
    check_values(config)
    resolved = copy.deepcopy(dict(config))
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    _raise_first_error(validator.iter_errors(resolved))
    _check_cross_references(resolved)
    return resolved


def _raise_first_error(errors: Any, section: str | None = None) -> None:
    """Raise a :class:`ConfigError` for the shallowest schema error, naming its key (below ``section`` if given)."""
    ordered = sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not ordered:
        return
    err = ordered[0]
    path = [*([section] if section else []), *map(str, err.absolute_path)]
    key = _key_path(path)
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed))
        prefix = "" if not path else key + "."
        raise ConfigError(
            f"config key {prefix}{unknown[0]}: unknown key"
            + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
            + "; see workflow/schemas/config.schema.yaml"
        )
    message = err.message
    if len(message) > 2 * EXCERPT_CHARS:  # jsonschema quotes the whole offending value
        message = f"{excerpt(err.instance)} is invalid here ({err.validator}: {excerpt(err.validator_value)})"
    raise ConfigError(f"config key {key}: {message}")


#: A model id without ``source`` is a registry architecture ``<arch>_<variant>`` (depthxai.models.registry).
REGISTRY_ARCH = re.compile(r"^(meter_(xxs|xs|s)|pixelformer_(large07|base07|tiny07|nano07))$")
#: The prefixes of a model ``source`` (depthxai.models.adapters); a model without one comes from the registry.
MODEL_SOURCE_PREFIXES = ("hf:", "module:")
_MODULE_SOURCE = re.compile(r"^module:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

#: depthxai's own attribution methods (config ids = method names); any other id names a Captum method in ``method``.
BUILTIN_METHODS = ("saliency", "ig", "rollout", "random", "random_smooth", "explainer")
#: Captum's primary attribution classes that depthxai.attribution.captum_methods offers (tests/test_workflow_config
#: holds the two lists equal), read here without importing Captum: the workflow validates its config without PyTorch.
CAPTUM_CLASSES = ("Deconvolution", "DeepLift", "DeepLiftShap", "FeatureAblation", "GradientShap", "GuidedBackprop",
                  "GuidedGradCam", "InputXGradient", "IntegratedGradients", "KernelShap", "LRP", "Lime", "Occlusion",
                  "Saliency", "ShapleyValueSampling", "ShapleyValues")
#: Captum classes that draw random numbers inside, and those whose default baselines hold noise (their maps
#: depend on the seed: recomputed in the analysis-seed test-retest).
CAPTUM_RANDOM_INSIDE = ("GradientShap", "KernelShap", "Lime", "ShapleyValueSampling")
CAPTUM_NOISE_BASELINES = ("DeepLiftShap", "GradientShap")
_CAPTUM_NAME = re.compile(r"^captum:(?P<outer>[A-Za-z_]\w*)(?:\((?P<inner>[A-Za-z_]\w*)\))?$")


def model_source(spec: Mapping[str, Any]) -> str:
    """``registry``, ``hf`` or ``module``: where a validated ``models.<id>`` entry comes from."""
    source = spec.get("source")
    return "registry" if source is None else source.split(":", 1)[0]


def captum_class(name: str) -> tuple[str, bool] | None:
    """``(Captum class, wrapped in NoiseTunnel)`` of a ``captum:<Class>`` / ``captum:NoiseTunnel(<Class>)`` name, or
    None when the name is not spelled so."""
    match = _CAPTUM_NAME.match(name)
    if match is None or (match["inner"] is not None and match["outer"] != "NoiseTunnel"):
        return None
    return (match["inner"], True) if match["inner"] is not None else (match["outer"], False)


def method_name(config: Mapping[str, Any], method_id: str) -> str:
    """The attribution method a configured id runs: the id itself for depthxai's own methods, else its ``method``
    (``captum:...``)."""
    return method_id if method_id in BUILTIN_METHODS else str(config["methods"][method_id]["method"])


#: The inputs each real dataset's preparation needs, by role (values of ``datasets.<name>.downloads``).
REAL_DATASET_ROLES: dict[str, tuple[str, ...]] = {"nyu": ("labeled", "splits"), "kitti": ("split_file", "depth", "raw")}
#: The further inputs of the train frames (``datasets.<name>.train``), by role: required only with ``train``.
TRAIN_DATASET_ROLES: dict[str, tuple[str, ...]] = {"nyu": (), "kitti": ("train_split_file", "train_raw")}


def download_keys(patterns: str | list[str], downloads: Mapping[str, Any]) -> list[str]:
    """The ``downloads`` keys named by a key or a list of keys / glob patterns, in config order, no repeats."""
    wanted = [patterns] if isinstance(patterns, str) else list(patterns)
    return [key for key in downloads if any(fnmatch.fnmatchcase(key, p) for p in wanted)]


def _check_cross_references(config: dict[str, Any]) -> None:
    datasets: dict[str, Any] = config["datasets"]
    downloads: dict[str, Any] = config.get("downloads", {})
    for name, spec in datasets.items():
        if spec["source"] == "synthetic":
            for key in ("setup", "n_test", "size"):
                if key not in spec:
                    raise ConfigError(f"config key datasets.{name}.{key}: required for a synthetic dataset")
            expected_setup = {"synthindoor": "indoor", "synthroad": "road"}.get(name)
            if expected_setup and spec["setup"] != expected_setup:
                raise ConfigError(f"config key datasets.{name}.setup: must be {expected_setup!r} for dataset {name!r}")
        elif spec["source"] != name:
            raise ConfigError(f"config key datasets.{name}.source: dataset {name!r} must have source {name!r}")
        else:
            roles = REAL_DATASET_ROLES[name] + TRAIN_DATASET_ROLES[name]
            required = REAL_DATASET_ROLES[name] + (TRAIN_DATASET_ROLES[name] if "train" in spec else ())
            given = spec.get("downloads", {})
            for role in required:
                if role not in given:
                    raise ConfigError(f"config key datasets.{name}.downloads.{role}: required "
                                      f"(roles: {', '.join(required)})")
            for role in given:
                if role not in roles:
                    raise ConfigError(f"config key datasets.{name}.downloads.{role}: unknown role "
                                      f"(roles: {', '.join(roles)})")
                if not download_keys(given[role], downloads):
                    raise ConfigError(f"config key datasets.{name}.downloads.{role}: {given[role]!r} "
                                      "matches no key of downloads")
        _check_train_frames(name, spec, downloads)
    for arch, spec in config["models"].items():
        _check_model_source(arch, spec)
        for dataset, source in spec["weights"].items():
            if dataset not in datasets:
                raise ConfigError(f"config key models.{arch}.weights.{dataset}: {dataset!r} "
                                  "is not a configured dataset")
            if "source" in spec:
                _check_adapted_weights(arch, spec, dataset, source)
                continue
            if source is None or (source != "train" and source not in downloads):
                raise ConfigError(
                    f"config key models.{arch}.weights.{dataset}: {source!r} is neither 'train' nor a key of downloads"
                )
            if source == "train" and datasets[dataset].get("n_train", 0) < 1:
                raise ConfigError(f"config key datasets.{dataset}.n_train: models.{arch} trains on it, "
                                  "so it must be >= 1")
        if "source" not in spec:  # hf:/module: models are never trained by the DAG
            _check_train_settings(arch, spec.get("train", {}))
    if "explainer" in config["methods"]:
        # The explainer trains on each dataset's train split: rendered (synthetic) or selected (datasets.<name>.train).
        for name, spec in datasets.items():
            if spec["source"] == "synthetic" and spec.get("n_train", 0) < 1:
                raise ConfigError(f"config key datasets.{name}.n_train: methods.explainer trains on it, "
                                  "so it must be >= 1")
            if spec["source"] != "synthetic" and "train" not in spec:
                example = ("{every: 1} (the 795 official train frames)" if name == "nyu"
                           else "{drives: [<raw drives of the Eigen train split>], every: <k>}")
                raise ConfigError(f"config key datasets.{name}.train: methods.explainer trains on the train split of "
                                  f"every dataset, and {name!r} prepares only its test split; set it, e.g. {example} "
                                  "(see config/paper.yaml), or remove the explainer from methods")
    if config["science"]["enabled"]:
        for name, spec in datasets.items():
            n_test = len(spec["ids"]) if "ids" in spec else spec.get("n_test")
            if n_test is not None and n_test < 4:
                key = "ids" if "ids" in spec else "n_test"
                raise ConfigError(f"config key datasets.{name}.{key}: the localisation mosaics of the science "
                                  "stage need at least 4 test images (or set science.enabled: false)")
    _check_evaluation(config["evaluation"])
    _check_methods(config)


def _check_model_source(model_id: str, spec: Mapping[str, Any]) -> None:
    """A registry id without ``source`` (and without ``card``); an ``hf:``/``module:`` source spelled right, under an
    id that is no registry architecture, never trained by the DAG."""
    key = f"config key models.{model_id}"
    if "source" not in spec:
        if not REGISTRY_ARCH.match(model_id):
            raise ConfigError(f"{key}: not a registry architecture (meter_{{xxs,xs,s}}, pixelformer_{{large07,base07,"
                              "tiny07,nano07}}); a model from elsewhere needs source: hf:<hub id or folder> or "
                              "module:<python.module>:<factory>")
        if "card" in spec:
            raise ConfigError(f"{key}.card: only for hf: and module: models (a registry model's card is fixed)")
        return
    source = spec["source"]
    if source.startswith("hf:"):
        if not source[len("hf:"):].strip():
            raise ConfigError(f"{key}.source: {source!r} names no hub id or folder (hf:<hub id or folder>)")
        if "factory_kwargs" in spec.get("card", {}):
            raise ConfigError(f"{key}.card.factory_kwargs: only for module: models")
    elif source.startswith("module:"):
        if not _MODULE_SOURCE.match(source):
            raise ConfigError(f"{key}.source: {source!r} is not module:<python.module>:<factory> (e.g. "
                              "module:mypackage.nets:build_depth_net)")
    else:
        prefix = source.split(":", 1)[0] + ":" if ":" in source else None
        what = f"has an unknown prefix {prefix!r}" if prefix else "has no prefix"
        raise ConfigError(f"{key}.source: {source!r} {what}; use hf:<hub id or folder> or "
                          "module:<python.module>:<factory> (or leave source out for a registry model)")
    if REGISTRY_ARCH.match(model_id):
        raise ConfigError(f"{key}: {model_id!r} is a registry architecture; give the {source.split(':')[0]}: model "
                          "another id")
    if "train" in spec:
        raise ConfigError(f"{key}.train: hf: and module: models are never trained by the workflow (train_model and "
                          "the training-seed test-retest apply to registry models only)")


def _check_adapted_weights(model_id: str, spec: Mapping[str, Any], dataset: str, weights: str | None) -> None:
    """``weights.<dataset>`` of an hf: model is null; of a module: model a downloads key or a file path."""
    key = f"config key models.{model_id}.weights.{dataset}"
    hf = spec["source"].startswith("hf:")
    if weights == "train":
        raise ConfigError(f"{key}: 'train': hf: and module: models are never trained by the workflow (train_model "
                          "and the training-seed test-retest apply to registry models only); give "
                          + ("null (the weights come with the hub id or folder)" if hf
                             else "a downloads key or the path of the state dict"))
    if hf and weights is not None:
        raise ConfigError(f"{key}: {weights!r}: an hf: model takes its weights from its hub id or folder "
                          f"({spec['source']}); give null")
    if not hf and not weights:
        raise ConfigError(f"{key}: a module: model needs its weights: a downloads key or the path of the state dict")


def _check_captum_method(method_id: str, params: Mapping[str, Any]) -> None:
    """A configured id other than depthxai's own methods runs a Captum class that exists, under an unreserved id."""
    key = f"config key methods.{method_id}"
    if "method" not in params:
        raise ConfigError(f"{key}: not one of depthxai's methods ({', '.join(BUILTIN_METHODS)}); another id needs "
                          "method: captum:<Class> or captum:NoiseTunnel(<Class>)")
    if method_id.startswith("random") or method_id == "oracle":
        raise ConfigError(f"{key}: ids starting with 'random' (the baselines) and 'oracle' (the controls' "
                          "pseudo-method) are reserved; name the Captum method otherwise")
    name = params["method"]
    parsed = captum_class(name) if isinstance(name, str) else None
    if parsed is None:
        raise ConfigError(f"{key}.method: {name!r} is not captum:<Class> or captum:NoiseTunnel(<Class>)")
    if parsed[0] not in CAPTUM_CLASSES:
        raise ConfigError(f"{key}.method: {name!r}: captum.attr has no primary method {parsed[0]!r} that depthxai "
                          f"offers; available: {', '.join(CAPTUM_CLASSES)}")


def _check_methods(config: Mapping[str, Any]) -> None:
    """Captum ids name a Captum class; the smoothness-matched baseline measures methods that run; the claims compare
    methods that run."""
    methods = config["methods"]
    for method_id, params in methods.items():
        if method_id not in BUILTIN_METHODS:
            _check_captum_method(method_id, params)
    smooth = methods.get("random_smooth")
    if smooth is not None and smooth["correlation_length"] == "auto":
        matched = [m for m in smooth["match_methods"] if m in methods and not m.startswith("random")]
        if not matched:
            raise ConfigError(f"config key methods.random_smooth.match_methods: none of {smooth['match_methods']} is "
                              "a configured explanation method, so there is no smoothness to match; add one or give "
                              "correlation_length in pixels")
    if config["science"]["enabled"]:
        baseline = config["claims"]["baseline"]
        if baseline not in methods:
            raise ConfigError(f"config key claims.baseline: {baseline!r} is not among the configured methods "
                              f"({', '.join(sorted(methods))}); the claims are decided against it (add it to methods, "
                              "or set science.enabled: false)")


#: Input sizes each architecture accepts, as the valid remainders of (H, W) modulo 64: METER's rule
#: (depthxai.models.meter.check_input_size), PixelFormer's multiples of 32 (the Swin encoder's total stride).
_VALID_SIZE_RESIDUES = {"meter": ({0, 61, 62, 63}, {0, *range(57, 64)}), "pixelformer": ({0, 32}, {0, 32})}


def _check_train_settings(arch: str, train: Mapping[str, Any]) -> None:
    """``models.<arch>.train``: the low-resolution epochs leave at least one epoch at the card's size, crops
    fit in the epochs, and both use sizes the network accepts."""
    key = f"config key models.{arch}.train"
    family = arch.split("_")[0]
    rows, cols = _VALID_SIZE_RESIDUES[family]
    rule = "multiples of 32" if family == "pixelformer" else "H mod 64 in {0, 61, 62, 63}, W mod 64 in {0, 57..63}"
    for epochs_key, size_key, bound in (("low_res_epochs", "low_res_size", "fewer than"),
                                        ("crop_epochs", "crop_size", "at most")):
        count = train.get(epochs_key, 0)
        if not count:
            continue
        if "epochs" in train and (count >= train["epochs"] if bound == "fewer than" else count > train["epochs"]):
            raise ConfigError(f"{key}.{epochs_key}: {count} must be {bound} epochs ({train['epochs']})")
        if size_key not in train:
            raise ConfigError(f"{key}.{size_key}: required with {epochs_key} > 0, e.g. [128, 192]")
        h, w = (int(v) for v in train[size_key])
        if h % 64 not in rows or w % 64 not in cols:
            raise ConfigError(f"{key}.{size_key}: {family} cannot take {h}x{w} ({rule})")


def _check_train_frames(name: str, spec: Mapping[str, Any], downloads: Mapping[str, Any]) -> None:
    """``datasets.<name>.train``: only for real datasets, ``drives`` exactly for kitti, and every kitti train drive
    backed by an archive of role train_raw (extracting where the test drives do) and by the depth archive's
    extract_members: a mistake shows here, not after hours of downloads."""
    train = spec.get("train")
    if train is None:
        return
    if spec["source"] == "synthetic":
        raise ConfigError(f"config key datasets.{name}.train: only for nyu and kitti; a synthetic dataset renders "
                          "n_train train images")
    if name == "nyu":
        if "drives" in train:
            raise ConfigError("config key datasets.nyu.train.drives: kitti only (NYU's train frames are the official "
                              "795; select with `every`)")
        return
    if "drives" not in train:
        raise ConfigError("config key datasets.kitti.train.drives: required (raw drives of the Eigen train split, e.g. "
                          "2011_09_26_drive_0001)")
    roles = spec["downloads"]
    raw_keys = download_keys(roles["train_raw"], downloads)
    extract_dirs = {downloads[k].get("extract_dir", k) for k in raw_keys + download_keys(roles["raw"], downloads)}
    if len(extract_dirs) != 1:
        raise ConfigError(f"config key datasets.kitti.downloads.train_raw: its archives and those of role raw extract "
                          f"into {sorted(extract_dirs)}; they must share one extract_dir (the raw root that the split "
                          "files' paths are relative to)")
    archives = {downloads[k]["filename"] for k in raw_keys}
    depth_members = [m for k in download_keys(roles["depth"], downloads)
                     for m in downloads[k].get("extract_members", ["*"])]
    for drive in train["drives"]:
        if f"{drive}_sync.zip" not in archives:
            raise ConfigError(f"config key datasets.kitti.train.drives: drive {drive} has no archive {drive}_sync.zip "
                              f"among the downloads of role train_raw ({roles['train_raw']!r}); add a downloads entry "
                              f"kitti_train_raw_{drive} (see config/paper.yaml)")
        gt_entry = f"train/{drive}_sync/proj_depth/groundtruth/image_02/0000000000.png"
        if not any(fnmatch.fnmatchcase(gt_entry, pattern) for pattern in depth_members):
            raise ConfigError(f"config key datasets.kitti.train.drives: the ground truth of drive {drive} is not "
                              f"extracted: add \"*/{drive}_sync/proj_depth/groundtruth/image_02/*\" to the "
                              f"extract_members of the depth download ({roles['depth']!r})")


def _check_evaluation(evaluation: Mapping[str, Any]) -> None:
    alignment = evaluation["alignment"]
    if alignment["method"] == "median" and alignment["space"] != "depth":
        raise ConfigError("config key evaluation.alignment.space: median scaling applies to depth-like predictions; "
                          "set space: depth (or method: lstsq)")
    fractions = evaluation["fractions"]
    if sorted(fractions) != list(fractions) or fractions[0] != 0.0:
        raise ConfigError("config key evaluation.fractions: must be increasing and start at 0")
    names = [scheme["name"] for scheme in evaluation["schemes"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"config key evaluation.schemes: scheme name {repeated[0]!r} is used twice (names must be "
                          "distinct: they suffix the metric names)")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file strictly and validate it (see :func:`read_config_file`, :func:`validate_config`)."""
    path = Path(path)
    raw = read_config_file(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return validate_config(raw)


def section_defaults(section: str, partial: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate one top-level section (e.g. ``evaluation`` passed to a CLI command) and fill its defaults.

    Raises:
        ConfigError: naming the key within the section.
    """
    schema = load_schema()
    try:
        sub_schema = {"$defs": schema["$defs"], **schema["properties"][section]}
    except KeyError:
        raise ConfigError(f"config key {section}: no such section") from None
    check_values(dict(partial or {}))
    instance = copy.deepcopy(dict(partial or {}))
    validator = _with_defaults(jsonschema.Draft202012Validator)(sub_schema)
    _raise_first_error(validator.iter_errors(instance), section)
    if section == "evaluation":
        _check_evaluation(instance)
    return instance


def stochastic_methods(config: Mapping[str, Any]) -> list[str]:
    """The configured methods whose maps depend on the seed (random ranking; IG with a noise baseline; a Captum method
    that draws inside (NoiseTunnel, GradientShap, Lime, KernelShap, ShapleyValueSampling), has noise baselines, or
    that this list does not know).

    Used by the workflow to recompute only those maps for test-retest repeats (the others are reused).
    """
    out = []
    for name, params in config["methods"].items():
        params = params or {}
        if name.startswith("random") or (name == "ig" and params.get("baseline") == "noise"):
            out.append(name)
        elif name not in BUILTIN_METHODS:
            captum, tunnel = captum_class(params["method"]) or ("", False)
            baselines = params.get("baselines", "black+noise" if captum in CAPTUM_NOISE_BASELINES else "black")
            if tunnel or captum in CAPTUM_RANDOM_INSIDE or "noise" in str(baselines) or captum not in CAPTUM_CLASSES:
                out.append(name)
    return sorted(out)


def science_methods(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The methods of the evaluation-science checks and their parameters: every configured method but the explainer
    (retrained by the sanity check itself, ``science.sanity.explainer``) and ``random_smooth`` (like ``random`` its
    maps do not depend on the model, so the checks' known answers hold for it by construction); IG with
    ``science.sanity.ig_steps`` path points (its cost is multiplied by the cascade's length). A Captum method's
    parameters keep their ``method`` key (the Captum class the id runs)."""
    methods = {name: dict(params or {}) for name, params in config["methods"].items()
               if name not in ("explainer", "random_smooth")}
    if "ig" in methods:
        methods["ig"]["n_steps"] = config["science"]["sanity"]["ig_steps"]
    return methods


def archive_root(config: Mapping[str, Any], dataset: str, role: str) -> str:
    """The folder the archives of one download role of a real dataset extract into, under
    ``<resources_dir>/downloads``; ``""`` when the dataset is not configured.

    Raises:
        ConfigError: naming the key, when the role's archives extract into more than one folder.
    """
    if dataset not in config["datasets"]:
        return ""
    downloads = config["downloads"]
    keys = download_keys(config["datasets"][dataset]["downloads"][role], downloads)
    folders = {downloads[k].get("extract_dir", k) for k in keys}
    if len(folders) != 1:
        raise ConfigError(f"config key datasets.{dataset}.downloads.{role}: archives extract into {sorted(folders)}; "
                          "they must share one extract_dir")
    return f"{config['resources_dir']}/downloads/{folders.pop()}"
