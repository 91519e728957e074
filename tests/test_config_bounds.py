"""Validation bounds what it accepts before any job runs: every count and size has an upper bound, numbers are
finite, strings hold no control characters, a key given twice and a YAML alias bomb are refused quickly with a
bounded message naming the key or the file and line."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthxai.config import MAX_CONFIG_NODES, load_config, load_schema, read_config_file, validate_config
from depthxai.errors import ConfigError


@pytest.fixture(scope="module")
def default(repo_root: Path) -> dict[str, Any]:
    return yaml.safe_load((repo_root / "config.yaml").read_text())


def _unbounded(node: Any, defs: dict[str, Any], path: str) -> list[str]:
    """Numbers without a maximum and arrays without maxItems anywhere in a schema node."""
    if not isinstance(node, dict):
        return []
    ref = node.get("$ref")
    merged = {**(defs[ref.rsplit("/", 1)[1]] if ref else {}), **node}
    types = merged.get("type")
    types = types if isinstance(types, list) else [types]
    found = []
    if {"integer", "number"} & set(types) and not {"enum", "const", "maximum", "exclusiveMaximum"} & set(merged):
        found.append(f"{path}: number without an upper bound")
    if "array" in types and "maxItems" not in merged:
        found.append(f"{path}: array without maxItems")
    for key in ("properties",):
        for name, sub in (node.get(key) or {}).items():
            found += _unbounded(sub, defs, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        found += _unbounded(node.get(key), defs, f"{path}[{key}]")
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            found += _unbounded(sub, defs, f"{path}<{key} {i}>")
    return found


def test_every_count_size_and_list_of_the_schema_is_bounded() -> None:
    schema = load_schema()
    problems = _unbounded({k: v for k, v in schema.items() if k != "$defs"}, schema["$defs"], "config")
    assert problems == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("methods.ig.n_steps", 10**9, r"config key methods\.ig\.n_steps: 1000000000 is greater than the maximum of 4096"),
    ("shards", 10**6, r"config key shards: 1000000 is greater than the maximum"),
    ("stats.bootstrap_resamples", 10**9, r"config key stats\.bootstrap_resamples"),
    ("science.retest.repeats", 1000, r"config key science\.retest\.repeats"),
    ("evaluation.infidelity.n_perturb_samples", 10**7, r"config key evaluation\.infidelity\.n_perturb_samples"),
    ("datasets.synthindoor.size", [240, 10**6], r"config key datasets\.synthindoor\.size\.1"),
    ("datasets.synthindoor.n_test", 10**7, r"config key datasets\.synthindoor\.n_test"),
    ("evaluation.infidelity.noise_std", float("nan"), r"config key evaluation\.infidelity\.noise_std: nan is not a "
                                                      r"finite number"),
    ("stats.confidence", float("inf"), r"config key stats\.confidence: inf is not a finite number"),
    ("resources_dir", "resources\n", r"config key resources_dir: 'resources\\n' contains a control character"),
    ("mirror", "a\x00b", r"config key mirror: .* contains a control character"),
])
def test_bounds_and_values_name_the_key(default: dict[str, Any], key: str, value: Any, message: str) -> None:
    config = copy.deepcopy(default)
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_yaml_nan_and_inf_are_refused_from_the_file(tmp_path: Path, repo_root: Path) -> None:
    text = (repo_root / "config.yaml").read_text().replace("  bootstrap_resamples: 2000",
                                                           "  bootstrap_resamples: 2000\n  confidence: .nan")
    (tmp_path / "nan.yaml").write_text(text.replace("  confidence: 0.95\n", ""))
    with pytest.raises(ConfigError, match=r"config key stats\.confidence: nan is not a finite number"):
        load_config(tmp_path / "nan.yaml")


def test_an_id_with_a_trailing_newline_is_refused(default: dict[str, Any]) -> None:
    """A JSON-schema pattern ending in $ accepts a final newline (Python's re): the control-character check does
    not."""
    config = copy.deepcopy(default)
    config["downloads"] = {"ckpt": {"url": "https://example.org/m.pth", "filename": "m.pth\n"}}
    config["models"]["meter_xxs"]["weights"]["synthroad"] = "ckpt"
    with pytest.raises(ConfigError, match=r"config key downloads\.ckpt\.filename: 'm\.pth\\n' contains a control"):
        validate_config(config)
    config["downloads"] = {"ckpt\t": {"url": "https://example.org/m.pth", "filename": "m.pth"}}
    with pytest.raises(ConfigError, match=r"config key downloads: the key 'ckpt\\t' contains a control character"):
        validate_config(config)


def test_a_key_given_twice_is_refused_naming_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("seed: 0\nthreads: 1\nstats:\n  alpha: 0.05\n  alpha: 0.01\n")
    with pytest.raises(ConfigError, match=rf"{path}, line 5: key 'alpha' is given twice in one mapping \(first on "
                                          r"line 4\)"):
        read_config_file(path)
    assert yaml.safe_load(path.read_text())["stats"]["alpha"] == 0.01  # what PyYAML alone would do: keep the last


def test_an_alias_bomb_is_refused_fast_with_a_bounded_message(tmp_path: Path, repo_root: Path) -> None:
    lines = ["x0: &a0 [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = (repo_root / "config.yaml").read_text()
    fractions = "  fractions: [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]"
    assert text.count(fractions) == 1  # the bomb is also used by a real key, not only defined
    text = text.replace(fractions, "  fractions: *a8")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n" + text)  # 10^9 values once expanded
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    assert len(message) < 500 and f"more than the {MAX_CONFIG_NODES:,}" in message
    assert message.startswith("config key x8:") or message.startswith("config key evaluation.fractions:")


def test_a_directory_or_missing_file_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{tmp_path}: is a directory, not a config file"):
        read_config_file(tmp_path)
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "absent.yaml")
    (tmp_path / "broken.yaml").write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        read_config_file(tmp_path / "broken.yaml")
