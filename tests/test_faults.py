"""Faults: failures inside a trial, a killed run resumed, Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import ecotune.search.objective as objective_module
from ecotune.search import run
from tests.conftest import tiny_spec


def _spec(name: str) -> dict:
    spec = tiny_spec(name, n_trials=3, storage="sqlite:///f.db")
    spec["training"]["epochs"] = 1
    spec["energy"] = {"meter": "cputime"}
    return spec


def _failing_train(error: BaseException):
    real_train = objective_module.train
    calls = {"n": 0}

    def train(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise error
        return real_train(*args, **kwargs)
    return train


@pytest.mark.parametrize("error", [MemoryError("cannot allocate 4 GiB"),
                                   RuntimeError("CUDA out of memory. Tried to allocate"),
                                   FloatingPointError("loss is nan at epoch 1")])
def test_a_failing_trial_is_recorded_and_the_study_goes_on(error, monkeypatch) -> None:
    monkeypatch.setattr(objective_module, "train", _failing_train(error))
    study = run(_spec("oom"))
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    reason = study.trials[1].user_attrs["fail_reason"]
    assert reason.startswith(type(error).__name__) and str(error) in reason


def test_a_nan_objective_value_fails_the_trial_with_a_reason(monkeypatch) -> None:
    from ecotune.training import train as real_train

    def nan_train(*args, **kwargs):
        result = real_train(*args, **kwargs)
        return result.__class__(**{**result.__dict__, "val_accuracy": float("nan")})

    monkeypatch.setattr(objective_module, "train", nan_train)
    study = run({**_spec("nan"), "study": {**_spec("nan")["study"], "n_trials": 1}})
    assert study.trials[0].state.name == "FAIL"
    assert "not finite" in study.trials[0].user_attrs["fail_reason"]


SLOW_STUDY = """
[study]
name = "slow"
storage = "sqlite:///slow.db"
sampler = "random"
n_trials = 50
seed = 0

[model]
name = "mlp"

[training]
epochs = 15
batch_size = 32

[energy]
meter = "cputime"

[search_space]
lr = { type = "float", low = 1e-3, high = 3e-2, log = true }
"""


def _states(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("select number, state from trials").fetchall())


def _start_slow_run(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    study_file = tmp_path / "slow.toml"
    study_file.write_text(SLOW_STUDY)
    process = subprocess.Popen([sys.executable, "-m", "ecotune", "run", str(study_file),
                                "--no-report"], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return process, tmp_path / "slow.db"


def _wait_for_running_after_complete(db: Path, process: subprocess.Popen) -> dict[int, str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            states = _states(db) if db.exists() else {}
        except sqlite3.OperationalError:  # tables not made yet, or a write in progress
            states = {}
        values = list(states.values())
        if "COMPLETE" in values and "RUNNING" in values:
            return states
        time.sleep(0.1)
    raise AssertionError("no trial was running after a complete one")


@pytest.mark.slow
def test_a_killed_run_resumes(tmp_path: Path, capsys) -> None:
    env = {**os.environ, "ECOTUNE_HEARTBEAT_S": "1", "ECOTUNE_GRACE_S": "2"}
    process, db = _start_slow_run(tmp_path, env)
    try:
        _wait_for_running_after_complete(db, process)
        time.sleep(0.3)  # well inside the running trial
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    states = _states(db)
    running = [n for n, s in states.items() if s == "RUNNING"]
    complete = {n for n, s in states.items() if s == "COMPLETE"}
    assert len(running) == 1 and complete
    time.sleep(2.5)  # past the grace period: the killed trial's heartbeat is stale

    from ecotune.cli import main

    os.environ.update(ECOTUNE_HEARTBEAT_S="1", ECOTUNE_GRACE_S="2")
    try:
        assert main(["run", str(tmp_path / "slow.toml"), "--n-trials", "1",
                     "--no-report"]) == 0
    finally:
        del os.environ["ECOTUNE_HEARTBEAT_S"], os.environ["ECOTUNE_GRACE_S"]
    after = _states(db)
    assert after[running[0]] == "FAIL"
    assert {n for n, s in after.items() if s == "COMPLETE"} >= complete  # none lost
    assert len(after) == len(states) + 1 and "RUNNING" not in after.values()
    study = optuna.load_study(study_name="slow", storage="sqlite:///slow.db")
    assert study.trials[-1].state.name == "COMPLETE"


@pytest.mark.slow
def test_ctrl_c_fails_the_running_trial_and_exits_130(tmp_path: Path) -> None:
    process, db = _start_slow_run(tmp_path, {**os.environ, "COLUMNS": "200"})
    _wait_for_running_after_complete(db, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "interrupted" in stderr
    # Something to look at: the front of what finished, and the command for its report.
    assert "Pareto front of slow" in stdout
    assert "ecotune report --storage sqlite:///slow.db --study-name slow" in stdout
    states = _states(db)
    assert "RUNNING" not in states.values()
    failed = [n for n, s in states.items() if s == "FAIL"]
    assert len(failed) == 1
    study = optuna.load_study(study_name="slow", storage="sqlite:///slow.db")
    assert "interrupted" in study.trials[failed[0]].user_attrs["fail_reason"]
