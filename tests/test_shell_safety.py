"""No config value is ever parsed by a shell.

Every value a rule hands to a ``shell:`` command is quoted (``{x:q}``, shlex.quote; optional arguments are lists,
one quoted word per element). Three checks: every placeholder of every shell command carries ``:q`` (static, so a
new rule cannot forget it); a dry run of the default and the paper preset with every free-text config string made
hostile (spaces, quotes, ``;``, ``$(...)``, backticks, globs) prints commands in which each hostile value is one
shell word; and the download rules actually run with a hostile mirror folder, file name and note: the file arrives,
and none of the commands planted in the values ran.
"""

from __future__ import annotations

import copy
import hashlib
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

HOSTILE = "a b;touch {canary} $(touch {canary}) `touch {canary}` 'q\"*"


def _shell_commands(text: str) -> list[str]:
    """The string literals of every ``shell:`` directive of a rules file, joined per command."""
    commands, current, inside = [], [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "shell:":
            inside, current = True, []
            continue
        if inside and stripped.startswith('"'):
            current.append(stripped)
            continue
        if inside:
            commands.append(" ".join(current))
            inside = False
    if inside:
        commands.append(" ".join(current))
    return commands


def test_every_shell_placeholder_is_quoted(repo_root: Path) -> None:
    rules = sorted((repo_root / "workflow" / "rules").glob("*.smk"))
    assert len(rules) >= 8
    seen = 0
    for path in rules:
        for command in _shell_commands(path.read_text()):
            placeholders = re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command)
            seen += len(placeholders)
            unquoted = [p for p in placeholders if not p.endswith(":q")]
            assert not unquoted, f"{path.name}: unquoted {unquoted} in {command}"
            assert "'{" not in command, f"{path.name}: a quoted placeholder is quoted again: {command}"
    assert seen > 100


def _hostile_strings(node: Any, canary: str, path: str = "") -> Any:
    """Every free-text string of a config made hostile, keeping the keys the schema constrains."""
    if isinstance(node, dict):
        return {k: _hostile_strings(v, canary, f"{path}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_hostile_strings(v, canary, path) for v in node]
    if isinstance(node, str) and path.split(".")[-1] in ("note", "url"):
        return node + HOSTILE.format(canary=canary)
    return node


@pytest.mark.slow
# the default preset downloads nothing: no free-text value reaches its commands, and its dry run must still plan;
# the paper preset's download rules get the hostile mirror, folder, URLs and notes
@pytest.mark.parametrize(("preset", "reaches_shell"), [("config.yaml", False), ("config/paper.yaml", True)])
def test_hostile_config_values_stay_single_words_in_every_command(preset: str, reaches_shell: bool, tmp_path: Path,
                                                                  repo_root: Path,
                                                                  copy_checkout: Callable[[Path], Path]) -> None:
    workdir = copy_checkout(tmp_path / "checkout")
    config = yaml.safe_load((repo_root / preset).read_text())
    config = _hostile_strings(config, "CANARY")
    config["resources_dir"] = str(tmp_path / HOSTILE.format(canary="CANARY"))
    config["mirror"] = str(tmp_path / ("mirror " + HOSTILE.format(canary="CANARY")))
    (workdir / "hostile.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", "hostile.yaml"],
                            cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = [line.split("Shell command: ", 1)[1] for line in result.stdout.splitlines()
                if line.startswith("Shell command: ")]
    assert len(commands) > 20
    if reaches_shell:  # else the word check below has nothing to check
        assert sum("CANARY" in command for command in commands) > 0
    for command in commands:
        words = shlex.split(command)
        assert "touch" not in words, command  # a planted command would be a word of its own
        for word in words:
            if "CANARY" in word:
                assert HOSTILE.format(canary="CANARY") in word or "touch CANARY" in word, word


@pytest.mark.slow
def test_download_rules_run_with_hostile_names(tmp_path: Path, repo_root: Path,
                                               copy_checkout: Callable[[Path], Path]) -> None:
    workdir = copy_checkout(tmp_path / "checkout")
    canary = tmp_path / "planted"
    # in a file name the command can only name the canary relative to the working folder ('/' is not allowed): a
    # planted file would be <workdir>/planted, which the checks below look for (and the name stays well under the
    # 255-byte limit however long tmp_path is)
    hostile_name = HOSTILE.format(canary=canary.name)
    mirror = tmp_path / f"mirror {hostile_name}"
    mirror.mkdir()
    payload = b"weights that are not weights"
    filename = f"w e;ights $(touch {canary.name}) 'x\".pth"
    (mirror / filename).write_bytes(payload)
    config: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((repo_root / "tests" / "data" / "tiny_config.yaml").read_text()))
    config["mirror"] = str(mirror)
    config["resources_dir"] = f"res {hostile_name}"
    config["downloads"] = {"odd": {"url": f"https://example.invalid/$(touch {canary})/w.pth", "filename": filename,
                                   "sha256": hashlib.sha256(payload).hexdigest(),
                                   "note": f"it's `touch {canary}` and $(touch {canary})"}}
    (workdir / "hostile.yaml").write_text(yaml.safe_dump(config))
    target = f"{config['resources_dir']}/downloads/{filename}"
    result = subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", "hostile.yaml"],
                            cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / target).read_bytes() == payload
    planted = [p for p in tmp_path.rglob("*") if p.name.startswith("planted") or p.name.startswith("q\"")]
    assert planted == [], planted
    assert not (workdir / canary.name).exists()
