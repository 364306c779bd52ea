"""Faults: failures inside a trial, a killed run resumed, Ctrl-C."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest

import ecotune.search._objective as objective_module
from ecotune.search import run
from tests import forkserver
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
    process = forkserver.start([sys.executable, "-m", "ecotune", "run", str(study_file),
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


def _wait_until_silent_for(db: Path, trial_number: int, grace_s: float) -> None:
    """Wait until the trial's newest sign of life (heartbeat, else its start) is older
    than ``grace_s`` by the clocks that stamped it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            started, beat, now = conn.execute(
                "select t.datetime_start, h.heartbeat, current_timestamp from trials t "
                "left join trial_heartbeats h on h.trial_id = t.trial_id "
                "where t.number = ?", (trial_number,)).fetchone()
        # Heartbeats use the database's clock (UTC), starts the worker's local clock.
        silent_s = ((datetime.fromisoformat(now) - datetime.fromisoformat(beat))
                    .total_seconds() if beat is not None
                    else (datetime.now() - datetime.fromisoformat(started)).total_seconds())
        if silent_s > grace_s + 0.1:
            return
        time.sleep(0.05)
    raise AssertionError("the killed trial never went silent")


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["created", "running"])
def test_a_killed_run_resumes(tmp_path: Path, kill_at: str) -> None:
    """A worker killed right after its trial was created (before any heartbeat: what a busy
    machine makes likely) or well into the trial: the next run fails that trial."""
    env = {**os.environ, "ECOTUNE_HEARTBEAT_S": "1", "ECOTUNE_GRACE_S": "2"}
    process, db = _start_slow_run(tmp_path, env)
    try:
        states = _wait_for_running_after_complete(db, process)
        if kill_at == "running":
            _wait_for_heartbeat(db, process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    states = _states(db)
    running = [n for n, s in states.items() if s == "RUNNING"]
    complete = {n for n, s in states.items() if s == "COMPLETE"}
    assert len(running) == 1 and complete
    _wait_until_silent_for(db, running[0], grace_s=2)

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
    assert "no heartbeat" in study.trials[running[0]].user_attrs["fail_reason"]


def _wait_for_heartbeat(db: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        with sqlite3.connect(db) as conn:
            if conn.execute("select count(*) from trials t join trial_heartbeats h "
                            "on h.trial_id = t.trial_id where t.state = 'RUNNING'"
                            ).fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the running trial never sent a heartbeat")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask() on purpose
def test_a_trial_without_any_heartbeat_is_failed_on_restart(tmp_path: Path,
                                                             monkeypatch) -> None:
    """Deterministic form of the race: a trial that exists but never beat (its worker
    died between creating it and its first heartbeat)."""
    from ecotune.execution._failures import fail_dead_trials
    from ecotune.storage._open import open_storage

    monkeypatch.setenv("ECOTUNE_HEARTBEAT_S", "1")
    monkeypatch.setenv("ECOTUNE_GRACE_S", "2")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = optuna.create_study(storage=open_storage(url), directions=["maximize"])
    orphan = study.ask()  # created, RUNNING, no heartbeat row
    assert fail_dead_trials(study) == []  # inside the grace period: maybe alive
    _wait_until_silent_for(tmp_path / "h.db", orphan.number, grace_s=2)
    assert fail_dead_trials(study) == [orphan.number]
    frozen = study.trials[orphan.number]
    assert frozen.state.name == "FAIL" and "no heartbeat" in frozen.user_attrs["fail_reason"]
    assert fail_dead_trials(study) == []  # nothing left to fail


@pytest.mark.slow
def test_ctrl_c_fails_the_running_trial_and_exits_130(tmp_path: Path) -> None:
    process, db = _start_slow_run(tmp_path, {**os.environ, "COLUMNS": "200"})
    _wait_for_running_after_complete(db, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)  # a state (the exit), not a delay
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
