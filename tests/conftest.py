"""Shared fixtures, requested by name (tests never import this module).

* ``repo_root``: the repository root (the checkout these tests belong to);
* ``copy_checkout``: a function ``copy_checkout(dest) -> dest`` copying the workflow there, to run it in isolation;
* ``shared_dir``: the developers' read-only material beside the checkout (../shared);
* ``tiny_model``: :func:`tiny_nets.tiny_depth_model`, the tiny stand-in depth model, configured per test module;
* ``workspace``: the hostile-inputs tests' dataset, weights and stage outputs (:mod:`hostile_fixtures`), per module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hostile_fixtures import build_workspace
from tiny_nets import tiny_depth_model

from depthxai.models.wrapper import DepthModel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("DEPTHXAI_SHARED", REPO.parent / "shared"))
    if not (path / "README.md").is_file():
        pytest.skip(f"developer material not found at {path} (set DEPTHXAI_SHARED)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    # Tests compare numbers to 1e-4 and below: fix the seed and the thread count for every test.
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def checkout_files() -> list[str]:
    """The checkout's files as the next commit holds them: tracked, plus new files git does not ignore."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard",
                                 "-z"], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            return [name for name in listed.stdout.split("\0") if name and (REPO / name).is_file()]
    skip = {".git", ".venv", "results", "resources", "logs", ".snakemake", "__pycache__", ".pytest_cache"}
    return [str(path.relative_to(REPO)) for path in REPO.rglob("*")
            if path.is_file() and not skip & set(path.relative_to(REPO).parts)]


def _copy_checkout(dest: Path) -> Path:
    """Copy the workflow (every file of :func:`checkout_files`) into ``dest``, so a test can run it in isolation."""
    for name in checkout_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def copy_checkout() -> Callable[[Path], Path]:
    """``copy_checkout(dest)`` copies every file of :func:`checkout_files` into ``dest`` and returns ``dest``."""
    return _copy_checkout


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., DepthModel]:
    """The factory :func:`tiny_nets.tiny_depth_model`: a fresh, seeded tiny depth model on each call."""
    return tiny_depth_model


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`hostile_fixtures.build_workspace` in a fresh folder, once per test module."""
    return build_workspace(tmp_path_factory.mktemp("hostile"))
