"""Confirming a front (ecotune.confirm, `ecotune confirm`): repeats measured by a
deterministic meter whose windows read scripted energies, so that every mean, standard
deviation and interval is known exactly; real training (digits, a tiny MLP), real SQLite."""

from __future__ import annotations

import json
import math
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import optuna
import pytest

import ecotune
from ecotune import energy
from ecotune.energy import Measurement, Meter
from ecotune.noise import (
    ConfirmError,
    MeterNoise,
    NotConfirmable,
    candidate_trials,
    stored_repeats,
    t_interval,
)
from ecotune.report import pareto_figure, pareto_front, pareto_plot_data, write_report
from ecotune.search import _measure, _objective
from ecotune.spec import load_spec
from tests import forkserver
from tests.conftest import run_cli, tiny_spec

#: Student's t quantile 0.975 with 2 degrees of freedom (three measurements).
T_975_2 = 4.302652729749464


class ScriptedMeter(Meter):
    """Window k reads energies[k] joules in energies[k] / 10 seconds (laps: nothing yet).
    ``stop_after``: the window after that many raises KeyboardInterrupt (an interrupt)."""

    name = "scripted"
    devices = ("cpu",)

    def __init__(self, energies: Iterable[float], stop_after: int | None = None) -> None:
        super().__init__()
        self.energies = list(energies)
        self.windows = 0
        self.stop_after = stop_after

    def _start(self) -> None:
        if self.stop_after is not None and self.windows >= self.stop_after:
            raise KeyboardInterrupt
        self._energy_j = self.energies[self.windows]
        self.windows += 1

    def _lap(self, exact: bool = False) -> Measurement:
        return Measurement(0.0, 0.0, 0.0, None, None, None, self.name, True)

    def _stop(self) -> Measurement:
        e = self._energy_j
        return Measurement(e / 10, e, e, None, None, None, self.name, True)


def _spec(name: str, n_trials: int = 3) -> dict:
    spec = tiny_spec(name, n_trials=n_trials, storage="sqlite:///confirm.db")
    spec["training"] = {"epochs": 1, "batch_size": 128, "test_evaluation": "none"}
    return spec


def _made_up_study(name: str, points: list[tuple[float, float]]) -> optuna.Study:
    """A study of the built-in trainer whose trials have the given (accuracy, energy_j)
    (trials made directly, so that the front is known), with its spec stored."""
    spec = load_spec(_spec(name))
    study = ecotune.create_study(name, storage="sqlite:///confirm.db", sampler="random")
    study.set_user_attr("ecotune.spec", spec.model_dump(mode="json"))
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True),
                     "width": optuna.distributions.CategoricalDistribution([0.25, 0.5])}
    for accuracy, energy_j in points:
        study.add_trial(optuna.trial.create_trial(
            values=[accuracy, energy_j], params={"lr": 0.01, "width": 0.25},
            distributions=distributions,
            user_attrs={"energy_j": energy_j, "duration_s": energy_j / 10,
                        "energy_meter": "scripted", "energy_is_estimate": True}))
    return study


# A (0.9, 10 J), B (0.8, 9 J), C (0.85, 9.5 J): all three on the front; D dominated.
POINTS = [(0.9, 10.0), (0.8, 9.0), (0.85, 9.5), (0.7, 30.0)]
# Repeats, in the order confirm runs them (trial 0, 1, 2, two each):
# A: 10, 12, 14 -> mean 12, sd 2; B: 9, 9.5, 8.5 -> mean 9, sd 0.5;
# C: 9.5, 14.75, 14.75 -> mean 13: A's mean (12) dominates it on the front of the means.
REPEATS = [12.0, 14.0, 9.5, 8.5, 14.75, 14.75]


def test_t_interval_is_the_student_t_interval_of_the_mean() -> None:
    iv = t_interval([10.0, 12.0, 14.0])
    half = T_975_2 * 2.0 / math.sqrt(3)
    assert (iv.n, iv.mean, iv.std) == (3, 12.0, 2.0)
    assert iv.low == pytest.approx(12.0 - half, rel=1e-12)
    assert iv.high == pytest.approx(12.0 + half, rel=1e-12)
    assert math.isnan(t_interval([5.0]).low)


def test_confirm_stores_exact_intervals_and_the_front_of_the_means() -> None:
    study = _made_up_study("exact", POINTS)
    before = [(t.values, t.user_attrs) for t in study.trials]
    meter = ScriptedMeter(REPEATS)
    result = ecotune.confirm(study, repeats=2, meter=meter)
    assert result.candidates == [0, 1, 2] and result.repeats_run == 6
    assert result.energy_j == pytest.approx(sum(REPEATS))
    # Trial values and attributes stay as stored; no trial was created.
    assert [(t.values, t.user_attrs) for t in study.trials] == before
    record = stored_repeats(study)[0]
    assert [r["energy_j"] for r in record["repeats"]] == [12.0, 14.0]
    assert all(r["meter"] == "scripted" and r["is_estimate"] for r in record["repeats"])
    half = T_975_2 * 2.0 / math.sqrt(3)
    assert record["energy_j"]["mean"] == 12.0 and record["energy_j"]["std"] == 2.0
    assert record["energy_j"]["low"] == pytest.approx(12.0 - half, rel=1e-12)
    assert record["duration_s"]["mean"] == pytest.approx(1.2)
    assert "Student-t" in record["interval"]

    front = pareto_front(study).set_index("trial")
    assert list(front.index) == [0, 2, 1]  # by accuracy: the stored values' front
    assert front.loc[0, "energy_j_mean"] == 12.0
    assert front.loc[0, "energy_j_ci_high"] == pytest.approx(12.0 + half, rel=1e-12)
    assert front.loc[1, "energy_j_ci_low"] == pytest.approx(
        9.0 - T_975_2 * 0.5 / math.sqrt(3), rel=1e-12)
    assert (front["measurements"] == 3).all()
    # A [7.03, 16.97], B [7.76, 10.24], C [5.47, 20.53]: every pair overlaps.
    assert front.loc[1, "overlaps"] == [0, 2]
    assert not front.loc[2, "on_confirmed_front"]
    confirmed = pareto_front(study, confirmed=True)
    assert confirmed["trial"].tolist() == [0, 1]  # C's mean is dominated by A's


def test_only_overlapping_front_points_are_flagged_and_drawn() -> None:
    study = _made_up_study("apart", [(0.9, 10.0), (0.8, 5.0)])
    ecotune.confirm(study, repeats=2, meter=ScriptedMeter([10.1, 9.9, 5.1, 4.9]))
    front = pareto_front(study).set_index("trial")
    assert front.loc[0, "overlaps"] == [] and front.loc[1, "overlaps"] == []
    study2 = _made_up_study("close", [(0.9, 10.0), (0.8, 9.0)])
    ecotune.confirm(study2, repeats=2, meter=ScriptedMeter([13.0, 7.0, 12.0, 6.0]))
    front2 = pareto_front(study2).set_index("trial")
    assert front2.loc[0, "overlaps"] == [1] and front2.loc[1, "overlaps"] == [0]

    figure = pareto_figure(pareto_plot_data(study2))
    bars = next(t for t in figure.data if t.name == "mean, 95 % interval")
    assert list(bars.x) == [10.0, 9.0]  # at the means, on the energy axis
    assert bars.error_x.array[0] == pytest.approx(T_975_2 * 3.0 / math.sqrt(3))
    ringed = next(t for t in figure.data if "cannot order" in (t.name or ""))
    assert sorted(ringed.x) == [9.0, 10.0]
    plain = pareto_figure(pareto_plot_data(study))
    assert not any("cannot order" in (t.name or "") for t in plain.data)

    paths = write_report(study2, Path("rep"), png=False)
    page = paths["index"].read_text()
    assert "energy_j mean [95 % interval]" in page and "(n=3) *" in page
    front_json = json.loads(paths["json"].read_text())["front"]
    assert [row["energy_j_mean"] for row in front_json] == [10.0, 9.0]


def test_near_front_adds_the_trials_the_meters_noise_could_put_on_the_front() -> None:
    # D at 10.5 J is dominated by A (0.9, 10 J) only by 5 %: within a 10 % noise.
    study = _made_up_study("near", [(0.9, 10.0), (0.8, 9.0), (0.85, 10.5), (0.5, 30.0)])
    noise = MeterNoise("scripted", 5, 0.10, 0.10, 1.0, 0.1, True)
    near = candidate_trials(study, "near-front", {"energy_cv": 0.10, "duration_cv": 0.10})
    assert [t.number for t in near] == [0, 1, 2]
    exact = candidate_trials(study, "near-front", {"energy_cv": 0.0, "duration_cv": 0.0})
    assert [t.number for t in exact] == [0, 1]
    result = ecotune.confirm(study, repeats=1, candidates="near-front", meter=ScriptedMeter(
        [10.0, 9.0, 10.5]), noise=noise)
    assert result.candidates == [0, 1, 2]


def test_near_front_measures_the_meters_noise_once_and_stores_it() -> None:
    study = _made_up_study("noise", [(0.9, 10.0), (0.8, 9.0)])
    # 5 noise windows of the fixed workload, after an unmeasured warm-up, then 2 repeats.
    meter = ScriptedMeter([1.0, 1.0, 1.0, 1.0, 2.0, 10.0, 9.0])
    result = ecotune.confirm(study, repeats=1, candidates="near-front", meter=meter)
    sd = t_interval([1.0, 1.0, 1.0, 1.0, 2.0]).std
    assert result.noise.energy_cv == pytest.approx(sd / 1.2)
    assert study.user_attrs["ecotune.meter_noise"]["scripted"]["windows"] == 5
    again = ecotune.confirm(study, repeats=2, candidates="near-front",
                            meter=ScriptedMeter([10.0, 9.0]))
    assert again.noise == result.noise and again.repeats_kept == 2


def test_an_interrupted_confirm_continues_where_it_stopped() -> None:
    study = _made_up_study("resume", POINTS)
    with pytest.raises(KeyboardInterrupt):
        ecotune.confirm(study, repeats=2, meter=ScriptedMeter(REPEATS, stop_after=3))
    assert [len(r["repeats"]) for _, r in sorted(stored_repeats(study).items())] == [2, 1]
    result = ecotune.confirm(study, repeats=2, meter=ScriptedMeter(REPEATS[3:]))
    assert (result.repeats_kept, result.repeats_run) == (3, 3)
    assert [r["energy_j"] for r in stored_repeats(study)[1]["repeats"]] == [9.5, 8.5]
    assert pareto_front(study, confirmed=True)["trial"].tolist() == [0, 1]


def test_repeats_train_the_same_knobs_and_seed_through_the_trainer(monkeypatch) -> None:
    """A real study run by the built-in trainer: its repeats reach the same accuracy."""
    monkeypatch.setattr(_measure, "get_meter", lambda *a, **k: ScriptedMeter([5.0, 6.0]))
    monkeypatch.setattr(_objective, "get_meter", lambda *a, **k: ScriptedMeter([]))
    study = ecotune.run(_spec("trained", n_trials=2))
    values = [t.values for t in study.trials]
    result = ecotune.confirm(study, repeats=1, candidates="all",
                             meter=ScriptedMeter([5.5, 6.5]))
    assert result.accuracy_differs == [] and len(study.trials) == 2
    assert [t.values for t in study.trials] == values
    records = stored_repeats(study)
    assert [records[n]["repeats"][0]["energy_j"] for n in (0, 1)] == [5.5, 6.5]
    assert [records[n]["repeats"][0]["accuracy"] for n in (0, 1)] == [v[0] for v in values]


def _study_attrs(db: Path) -> list:
    with sqlite3.connect(db) as conn:
        return conn.execute("select * from study_user_attributes order by 1").fetchall()


def test_bad_input_exits_2_with_one_line_and_stores_nothing(tmp_path: Path, capsys) -> None:
    from ecotune.cli import main

    _made_up_study("made", POINTS[:2])
    own = ecotune.create_study("own", storage="sqlite:///confirm.db")
    own.add_trial(optuna.trial.create_trial(values=[0.5, 1.0]))
    empty = _made_up_study("empty", [])
    empty.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    db = tmp_path / "confirm.db"
    before = _study_attrs(db)
    storage = ["--storage", "sqlite:///confirm.db"]
    cases = {
        ("--study-name", "nope"): "no study 'nope'",
        ("--study-name", "made", "--repeats", "0"): "--repeats must be >= 1",
        ("--study-name", "made", "--cooldown-s", "-1"): "--cooldown-s must be >= 0",
        ("--study-name", "empty"): "has no complete trial",
        ("--study-name", "own"): "your own objective",
    }
    # The first case in a real process (its exit status and stderr as a shell sees them);
    # the others in-process, through the same main(), without a process start each.
    for i, (args, message) in enumerate(cases.items()):
        if i == 0:
            done = run_cli("confirm", *storage, *args, cwd=tmp_path)
            status, err = done.returncode, done.stderr
        else:
            capsys.readouterr()
            status, err = main(["confirm", *storage, *args]), capsys.readouterr().err
        assert status == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert _study_attrs(db) == before
    with pytest.raises(NotConfirmable):
        ecotune.confirm(own)
    with pytest.raises(ConfirmError, match="repeats must be"):
        ecotune.confirm(empty, repeats=0)


@pytest.mark.slow
def test_confirm_command_continues_after_ctrl_c_and_prints_what_it_cost(
        tmp_path: Path, capsys, monkeypatch) -> None:
    from ecotune.cli import main

    # The study in-process (the same main() `ecotune run` runs); the Ctrl-C goes to a
    # real process, as a shell sends it; the confirm that continues runs in-process.
    assert main(["run", "--no-report", "--storage", "sqlite:///cli.db", "--n-trials", "2",
                 str(_toml(tmp_path))]) == 0
    command = [sys.executable, "-m", "ecotune", "confirm", "--storage", "sqlite:///cli.db",
               "--repeats", "3", "--candidates", "all"]
    first = forkserver.start(command, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 480  # a loaded machine: the start alone can take minutes
    while _stored_repeat_keys(tmp_path / "cli.db") == 0:  # wait for a stored repeat
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "run the same confirm again" in err, err

    monkeypatch.setenv("COLUMNS", "200")  # as run_cli's processes: no wrapped tables
    capsys.readouterr()
    assert main(command[3:]) == 0
    out = capsys.readouterr().out
    kept = int(re.search(r"(\d+) already stored", out).group(1))
    assert kept >= 1 and f"{6 - kept} repeat(s) run now" in out
    assert "repeat 3/3" in out and "(estimate, cputime)" in out
    assert "the study's trials' training took" in out
    assert "point(s) confirmed by repeats" in out and "mean [95 % interval]" in out
    study = optuna.load_study(study_name="cli", storage="sqlite:///cli.db")
    assert [len(r["repeats"]) for r in stored_repeats(study).values()] == [3, 3]
    assert len(study.trials) == 2


def _stored_repeat_keys(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from study_user_attributes "
                            "where key like 'ecotune.repeats.%'").fetchone()[0]


def _toml(tmp_path: Path) -> Path:
    from tests.conftest import tiny_study_toml

    path = tmp_path / "cli.toml"
    path.write_text(tiny_study_toml("cli", training=("epochs = 1", 'test_evaluation = "none"')))
    return path


@pytest.mark.slow
def test_meters_noise_prints_each_available_meters_variation(tmp_path: Path) -> None:
    done = run_cli("meters", "--noise", "--windows", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "noise: cv of energy / duration (2 windows)" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("│ cputime"))
    assert "%" in row and "estimate" in done.stdout
    assert "noise (cv of energy / duration):" in done.stdout  # auto's, the default meter

def test_meters_noise_refuses_fewer_than_two_windows(capsys) -> None:
    """In-process (the same main(); the test above runs the command as a real process)."""
    from ecotune.cli import main

    assert main(["meters", "--noise", "--windows", "1"]) == 2
    err = capsys.readouterr().err
    assert "--windows must be >= 2" in err and len(err.strip().splitlines()) == 1, err


def test_a_study_whose_meter_this_machine_lacks_is_refused_before_anything_runs(
        monkeypatch) -> None:
    study = _made_up_study("elsewhere", POINTS[:2])
    spec = dict(study.user_attrs["ecotune.spec"], energy={"meter": "rapl"})
    study.set_user_attr("ecotune.spec", spec)
    # As on a machine without RAPL counters (this one's, or CI's, whichever it is).
    monkeypatch.setattr(energy, "meter_status",
                        lambda name: energy.Availability(False, "no powercap (test)"))
    energy.get_meter.cache_clear()  # no RAPL meter an earlier test made
    try:
        with pytest.raises(ConfirmError, match="cannot repeat the study's trials here.*"
                                               "no powercap"):
            ecotune.confirm(study)
    finally:
        energy.get_meter.cache_clear()
    assert stored_repeats(study) == {}
