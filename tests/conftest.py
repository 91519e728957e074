"""Shared fixtures. ``shared_dir`` is the developers' read-only material beside the checkout (../shared)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
