"""Shared fixtures: every test runs in its own working directory, so the default
``sqlite:///ecotune.db`` and report directory never touch the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_spec(name: str = "tiny", **study: object) -> dict:
    """A digits study that trains in well under a second per trial."""
    return {
        "study": {"name": name, "n_trials": 3, "sampler": "random", "seed": 0, **study},
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "training": {"epochs": 2, "batch_size": 128},
        "search_space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "width": {"type": "categorical", "choices": [0.25, 0.5]},
        },
    }


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ecotune ARGS`` in a real process."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ecotune", *args], cwd=cwd,
                           capture_output=True, text=True, timeout=300, env=env)
