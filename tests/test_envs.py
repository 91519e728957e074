"""Software environments: every rule runs in a conda env (envs/*.yaml) that is pinned, conda-forge only, agrees
with pyproject.toml, and holds every third-party package the rule's ``python -m depthxai <command>`` imports.

The rules are read through Snakemake's own API (in a subprocess: loading a workflow changes the working
directory and global logging), for both presets, so the env a rule really gets is checked, including the
CPU/CUDA choice made in workflow/rules/common.smk. The imports are found statically (ast) from the command's
handler in the depthxai.cli package through every depthxai module it reaches, so no env needs to be installed.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
CONFIGS = {"default": [], "paper": [REPO / "config" / "paper.yaml"]}

# conda-forge package name -> the PyPI distribution it provides (names equal unless listed).
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
    "seaborn-base": "seaborn",
}
# top-level import name -> PyPI distribution (names equal unless listed).
IMPORT_TO_PYPI = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}
# Imported only inside a function for an optional feature, with its own "install X" error: not required.
OPTIONAL_IMPORTS = {"gdown", "transformers"}
# Extras that no workflow env needs: the test and code-check tools, and hf (transformers models, hf:<id>; library
# use for now).
NO_ENV_EXTRAS = ("test", "lint", "hf")
# Packages of the envs that are tools, not imports of the package.
ENV_TOOLS = {"python", "pip"}

_DUMP_RULES = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

repo, configfiles = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
rules = {}
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow_api = api.workflow(resource_settings=ResourceSettings(), snakefile=repo / "Snakefile", workdir=repo,
                                config_settings=ConfigSettings(configfiles=configfiles))
    workflow = workflow_api._workflow
    for rule in workflow.rules:
        env = rule._conda_env
        gpu = rule.resources.get("gpu")
        rules[rule.name] = {
            "conda": None if env is None else str(env),
            "basedir": str(rule.basedir.get_path_or_uri(secret_free=True)),
            "norun": bool(rule.norun),
            "shell": rule.shellcmd,
            "gpu": None if gpu is None else gpu.value,
            "local": rule.name in workflow._localrules,
        }
print("RULES-JSON" + json.dumps(rules))
"""


@cache
def workflow_rules(preset: str) -> dict[str, dict]:
    """The rules of the workflow under a preset: name -> conda env (as written), shell command, gpu, ..."""
    result = subprocess.run([sys.executable, "-c", _DUMP_RULES, str(REPO), *map(str, CONFIGS[preset])],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    marker = next((line for line in result.stdout.splitlines() if line.startswith("RULES-JSON")), None)
    assert result.returncode == 0 and marker, f"loading the workflow ({preset}) failed:\n{result.stderr[-3000:]}"
    return json.loads(marker.removeprefix("RULES-JSON"))


def env_path(rule: dict) -> Path:
    """A rule's conda env file, resolved as Snakemake does (relative paths from the rule's .smk folder)."""
    path = Path(rule["conda"])
    return path if path.is_absolute() else (Path(rule["basedir"]) / path).resolve()


def depthxai_command(rule: dict) -> str:
    match = re.search(r"python -m depthxai ([a-z][a-z0-9-]*)", rule["shell"] or "")
    assert match, f"shell command does not call `python -m depthxai <command>`: {rule['shell']!r}"
    return match.group(1)


@cache
def read_env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def conda_requirements(env: dict) -> dict[str, SpecifierSet]:
    """PyPI name -> version specifier of every package an env file installs (conda and pip sections)."""
    specs: dict[str, SpecifierSet] = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            for line in item["pip"]:
                req = Requirement(line)
                specs[req.name.lower()] = req.specifier
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", item)
        assert match, f"unparsable conda spec {item!r}"
        name, version = match.group(1).lower(), match.group(2).strip()
        # conda's "=X" means "X or X.*"; pins here are full versions, so it is the same as "==X".
        if re.fullmatch(r"=[^=].*", version):
            version = "=" + version
        specs[CONDA_TO_PYPI.get(name, name)] = SpecifierSet(version)
    return specs


@cache
def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, extra_lines in project.get("optional-dependencies", {}).items():
        if extra not in NO_ENV_EXTRAS:
            lines += extra_lines
    return {Requirement(line).name.lower(): Requirement(line).specifier for line in lines}


# ---------------------------------------------------------------------------------- imports of a command


def _module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node under ``node`` except the bodies of ``if TYPE_CHECKING:`` (imports for type checkers only)."""
    found, todo = [], [node]
    while todo:
        current = todo.pop()
        found.append(current)
        if isinstance(current, ast.If) and isinstance(current.test, ast.Name) and current.test.id == "TYPE_CHECKING":
            todo += current.orelse
            continue
        todo += list(ast.iter_child_nodes(current))
    return found


def _imports(nodes: list[ast.AST], module: str) -> set[str]:
    """Absolute module names imported anywhere in these nodes (relative imports resolved against module)."""
    found: set[str] = set()
    for node in nodes:
        for sub in _runtime_nodes(node):
            if isinstance(sub, ast.Import):
                found.update(alias.name for alias in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                if sub.level:
                    # level 1 is the package the module is in (the module itself for an __init__.py)
                    package = module.split(".") if _is_package(module) else module.split(".")[:-1]
                    base = package[: len(package) - (sub.level - 1)]
                    prefix = ".".join(base + ([sub.module] if sub.module else []))
                else:
                    prefix = sub.module or ""
                found.add(prefix)
                # "from depthxai.models import predict" may name a submodule
                found.update(f"{prefix}.{alias.name}" for alias in sub.names if _module_file(f"{prefix}.{alias.name}"))
    return found


def _is_package(module: str) -> bool:
    return (SRC.joinpath(*module.split(".")) / "__init__.py").is_file()


def third_party_imports(command: str) -> set[str]:
    """PyPI names of the packages `python -m depthxai <command>` can import (optional ones excluded).

    Starts from the handler run_<command> in the depthxai/cli package and the cli helpers it calls, then follows
    every depthxai module (and the packages above it) transitively, collecting all their imports. Of the cli modules
    themselves only the top-level imports count: their commands import what they need inside the handlers, so a
    statistics command never loads PyTorch.
    """
    functions: dict[str, ast.FunctionDef] = {}
    top_level: list[ast.stmt] = []
    for path in sorted((SRC / "depthxai" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        functions.update({node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)
                          and node.name != "register"})
        top_level += [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    handler = f"run_{command.replace('-', '_')}"
    if handler not in functions:
        raise LookupError(f"`depthxai {command}` has no handler {handler} in the depthxai.cli package")
    # the handler plus the cli helpers it calls (e.g. load_model), and the cli modules' top-level imports
    todo, seen_functions = [handler], set()
    while todo:
        name = todo.pop()
        if name in seen_functions:
            continue
        seen_functions.add(name)
        for sub in ast.walk(functions[name]):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in functions:
                todo.append(sub.func.id)
    modules = _imports(top_level + [functions[name] for name in seen_functions], "depthxai.cli.common")

    external: set[str] = set()
    visited: set[str] = set()
    queue = ["depthxai", *modules]
    while queue:
        name = queue.pop()
        if name in visited:
            continue
        visited.add(name)
        top = name.split(".")[0]
        if top != "depthxai":
            if top not in sys.stdlib_module_names and top not in ("__future__",):
                external.add(top)
            continue
        parts = name.split(".")
        queue += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        path = _module_file(name)
        if path is None:  # "from depthxai.x import name" where name is not a module
            continue
        tree = ast.parse(path.read_text())
        if name == "depthxai.cli" or name.startswith("depthxai.cli."):  # top-level imports only (see above)
            tree = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))],
                              type_ignores=[])
        queue += sorted(_imports([tree], name))
    return {IMPORT_TO_PYPI.get(top, top).lower() for top in external - OPTIONAL_IMPORTS}


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(CONFIGS))
def test_every_rule_has_an_existing_env_file(preset: str) -> None:
    rules = workflow_rules(preset)
    runnable = {name: rule for name, rule in rules.items() if not rule["norun"]}
    assert len(runnable) >= 15, sorted(runnable)
    for name, rule in runnable.items():
        assert rule["conda"], f"rule {name} has no conda: directive"
        path = env_path(rule)
        assert path.is_file() and path.parent == REPO / "envs", f"rule {name}: env file {path} missing"


@pytest.mark.slow
def test_model_rules_take_cuda_env_and_a_gpu_exactly_when_the_config_asks_for_one() -> None:
    gpu_rules = {"predict", "attribute", "evaluate", "train_explainer", "sanity", "localisation", "object_shift",
                 "attribute_repeat", "evaluate_repeat", "retrain_explainer", "predict_retrained",
                 "attribute_retrained", "evaluate_retrained"}
    # the smoothness of the maps is measured where the attribution methods are importable, and Figure 1's panels
    # where the model cards' input preparation is (torch env, no GPU)
    model_rules = {"train_model", "retrain_model", "model_card", "smoothness", "smoothness_retrained",
                   "qualitative_panels", *gpu_rules}
    for preset, device_env, gpus in (("default", "torch.yaml", 0), ("paper", "torch-cuda.yaml", 1)):
        rules = workflow_rules(preset)
        assert model_rules <= set(rules), sorted(model_rules - set(rules))
        for name in model_rules:
            assert env_path(rules[name]).name == device_env, (preset, name)
        for name, rule in rules.items():
            if name not in model_rules and not rule["norun"]:
                assert env_path(rule).name in ("data.yaml", "stats.yaml"), (preset, name)
            expected = gpus if name in gpu_rules else None
            assert rule["gpu"] == expected, (preset, name, rule["gpu"])
    # downloads stay on the submit host of a cluster
    rules = workflow_rules("paper")
    assert rules["download_file"]["local"] and rules["download_archive"]["local"]
    assert not rules["attribute"]["local"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(CONFIGS))
def test_each_env_holds_every_package_its_rules_import(preset: str) -> None:
    problems = []
    for name, rule in sorted(workflow_rules(preset).items()):
        if rule["norun"]:
            continue
        command = depthxai_command(rule)
        try:
            needed = third_party_imports(command)
        except LookupError as exc:  # the rule calls a command the CLI does not have
            problems.append(f"rule {name}: {exc}")
            continue
        missing = needed - set(conda_requirements(read_env(env_path(rule))))
        if missing:
            problems.append(f"rule {name} (depthxai {command}) imports {sorted(missing)}, "
                            f"absent from {env_path(rule).name}")
    assert not problems, "\n".join(problems)


def test_import_scan_finds_known_dependencies() -> None:
    # the scanner itself: the model commands reach torch and captum, the data commands do not need torch
    assert {"torch", "captum", "numpy"} <= third_party_imports("attribute")
    assert {"h5py", "scipy", "numpy", "pandas"} <= third_party_imports("prepare-nyu")
    assert "torch" not in third_party_imports("synthesize")
    assert "gdown" not in third_party_imports("fetch")
    # the statistics and figures read files only (Figure 1 reads the panels the torch env wrote)
    for command in ("stats", "figure-qualitative", "claims"):
        assert "torch" not in third_party_imports(command), command
    assert "torch" in third_party_imports("qualitative-panels")
    # an import for type checkers only never runs; one in a function does
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\nelse:\n    import json\n"
                     "def f():\n    import scipy\n")
    assert _imports([tree], "depthxai.x") == {"typing", "json", "scipy"}


ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def test_env_files_exist() -> None:
    assert {path.name for path in ENV_FILES} == {"data.yaml", "stats.yaml", "torch.yaml", "torch-cuda.yaml"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_is_pinned_conda_forge_only(path: Path) -> None:
    env = read_env(path)
    assert set(env) == {"channels", "dependencies"}, f"{path.name}: keys {sorted(env)}"
    # conda-forge only: `nodefaults` keeps Anaconda's defaults channel (and its licence terms) out.
    assert env["channels"] == ["conda-forge", "nodefaults"], f"{path.name}: channels {env['channels']}"
    conda_items = [item for item in env["dependencies"] if isinstance(item, str)]
    assert "python=3.11" in conda_items, f"{path.name}: python must be pinned (python=3.11)"
    specs = conda_requirements(env)
    for name, spec in specs.items():
        assert str(spec) or name in ENV_TOOLS, f"{path.name}: {name} has no version bound"
    pip_sections = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    assert len(pip_sections) <= 1 and (not pip_sections or "pip" in conda_items), f"{path.name}: pip section needs pip"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(path: Path) -> None:
    specs = {name: spec for name, spec in conda_requirements(read_env(path)).items() if name not in ENV_TOOLS}
    project = pyproject_requirements()
    unknown = set(specs) - set(project)
    assert not unknown, f"{path.name}: {sorted(unknown)} are not dependencies in pyproject.toml"
    for name, spec in specs.items():
        assert spec == project[name], f"{path.name}: {name}{spec} but pyproject.toml says {name}{project[name]}"


def test_envs_together_cover_pyproject() -> None:
    # every runtime dependency is in some env, except Snakemake itself (it runs the envs, not inside them)
    covered = set().union(*(conda_requirements(read_env(path)) for path in ENV_FILES))
    assert set(pyproject_requirements()) - covered == {"snakemake"}


def test_torch_and_captum_pins() -> None:
    project = pyproject_requirements()
    assert project["torch"] == SpecifierSet("==2.13.0") and project["captum"] == SpecifierSet("==0.9.0")
    for name, torch_package in (("torch.yaml", "pytorch-cpu"), ("torch-cuda.yaml", "pytorch-gpu")):
        env = read_env(REPO / "envs" / name)
        assert f"{torch_package}==2.13.0" in env["dependencies"], name
        assert conda_requirements(env)["captum"] == SpecifierSet("==0.9.0"), name
