"""The package's layers point one way: a module imports only from its own layer or earlier ones, never a later
stage (read statically from every import statement, the ones inside functions included), and the statistics and
report layers run without PyTorch (the stats conda env has none)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "depthxai"

#: The stages in data-flow order; a module may import from its own layer and the layers before it.
LAYERS = ("base", "data", "metrics", "models", "attribution", "evaluation", "stats", "report", "cli")
#: Modules of no stage: the foundations every layer may use.
BASE = ("errors", "fileio", "imageops", "tidy", "correlation", "config", "device", "runtime", "memory", "progress",
        "__init__")


def layer_of(module: str) -> str:
    """The layer of ``depthxai.<a>.<b>`` (its first component; top-level helper modules are the base)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    first = parts[1]
    if first == "__main__":
        return "cli"
    if first in BASE:
        return "base"
    assert first in LAYERS, f"{module}: a top-level package outside the layers {LAYERS}; add it to LAYERS or BASE"
    return first


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """The depthxai modules ``name`` imports anywhere in its file (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
    return {m for m in found if m == "depthxai" or m.startswith("depthxai.")}


def back_edges() -> list[str]:
    edges = []
    for name, path in modules().items():
        own = LAYERS.index(layer_of(name))
        for target in sorted(imports_of(name, path)):
            if LAYERS.index(layer_of(target)) > own:
                edges.append(f"{name} ({layer_of(name)}) imports {target} ({layer_of(target)})")
    return edges


def test_no_module_imports_a_later_layer() -> None:
    assert len(modules()) > 60
    assert back_edges() == []


def test_the_layer_rule_catches_a_back_edge(tmp_path: Path) -> None:
    """The check itself, on a planted violation: a data module that imports the report."""
    planted = tmp_path / "depthxai" / "data" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from depthxai.report.tables import write_table\n")
    imported = imports_of("depthxai.data.planted", planted)
    assert imported == {"depthxai.report.tables"}
    assert LAYERS.index(layer_of("depthxai.report.tables")) > LAYERS.index(layer_of("depthxai.data.planted"))


def _run_fresh(code: str) -> str:
    """What ``code`` prints in a fresh interpreter that sees only this package (nothing imported yet)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            env={"PYTHONPATH": str(PACKAGE.parent), "PATH": ""})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_statistics_and_report_modules_import_without_pytorch() -> None:
    """What the statistics and report rules run (stats env: no PyTorch): importing them must not load torch."""
    code = ("import sys\n"
            "import depthxai.cli, depthxai.stats.run, depthxai.stats.reliability_run, depthxai.report.tables, "
            "depthxai.report.claims, depthxai.report.science, depthxai.report.figures, depthxai.report.explain, "
            "depthxai.evaluation.panels, "
            "depthxai.tidy\n"
            "print('torch' in sys.modules)\n")
    assert _run_fresh(code) == "False"


def test_jobs_that_never_call_captum_or_scipy_stats_do_not_import_them() -> None:
    """Every evaluation, prediction, rollout, baseline and explainer job starts a Python process: importing Captum
    (about 1 s) and scipy.stats (about 1 s) there would cost each such job more than its own work on the tiny
    study. They load where used: Saliency/IG/Captum methods, Spearman correlation, the statistics."""
    code = ("import sys\n"
            "import depthxai.attribution, depthxai.evaluation.run, depthxai.evaluation.fidelity, "
            "depthxai.models.predict, depthxai.cli.evaluation, depthxai.cli.attribution\n"
            "from depthxai.attribution import build_method\n"
            "build_method('rollout'); build_method('random')\n"
            "before = sorted(m for m in ('captum', 'scipy.stats') if m in sys.modules)\n"
            "build_method('saliency')\n"
            "print(before, 'captum' in sys.modules)\n")
    assert _run_fresh(code) == "[] True"
