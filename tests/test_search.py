"""Studies over named objectives, samplers by name, and whole runs from a spec."""

from __future__ import annotations

import itertools

import optuna
import pytest

import ecotune
from ecotune.samplers import make_sampler
from ecotune.search import StudyMismatchError
from tests.conftest import auto_meter_name, tiny_spec


def test_create_study_sets_directions_and_metric_names() -> None:
    study = ecotune.create_study("s", storage="sqlite:///s.db",
                                 objectives=["accuracy", "energy_j", "co2_g"])
    assert study.metric_names == ["accuracy", "energy_j", "co2_g"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    # Plain Optuna storage: plain Optuna reads it back unchanged.
    assert optuna.load_study(study_name="s", storage="sqlite:///s.db").metric_names == [
        "accuracy", "energy_j", "co2_g"]


def test_create_study_takes_custom_objectives_and_sampler_objects() -> None:
    sampler = optuna.samplers.RandomSampler(seed=1)
    study = ecotune.create_study("c", storage=None, sampler=sampler,
                                 objectives={"f1": "maximize", "latency_ms": "minimize"})
    assert study.sampler is sampler
    assert study.metric_names == ["f1", "latency_ms"]


def test_create_study_errors() -> None:
    with pytest.raises(ValueError, match="unknown objective 'joules'"):
        ecotune.create_study("e", storage=None, objectives=["joules"])
    with pytest.raises(ValueError, match="direction must be"):
        ecotune.create_study("e", storage=None, objectives={"x": "up"})
    with pytest.raises(ValueError, match="unknown sampler 'anneal'"):
        ecotune.create_study("e", storage=None, sampler="anneal")
    with pytest.raises(ValueError, match="grid sampler needs a grid"):
        ecotune.create_study("e", storage=None, sampler="grid")
    with pytest.raises(ValueError, match="bad option"):
        make_sampler("tpe", options={"n_startup": 3})


def test_loading_with_other_objectives_is_refused_and_changes_nothing() -> None:
    ecotune.create_study("m", storage="sqlite:///m.db")
    with pytest.raises(StudyMismatchError, match="already exists with objectives"):
        ecotune.create_study("m", storage="sqlite:///m.db", objectives=["accuracy"])
    study = optuna.load_study(study_name="m", storage="sqlite:///m.db")
    assert study.metric_names == ["accuracy", "energy_j"]


def test_grid_sampler_visits_exactly_the_grid() -> None:
    spec = tiny_spec(sampler="grid", n_trials=None, storage="sqlite:///grid.db")
    spec["search_space"] = {
        "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "grid": [1e-3, 1e-2]},
        "width": {"type": "categorical", "choices": [0.25, 0.5]},
        "epochs": {"type": "int", "low": 1, "high": 2},
    }
    spec["energy"] = {"meter": "cputime"}
    study = ecotune.run(spec)
    visited = sorted((t.params["lr"], t.params["width"], t.params["epochs"])
                     for t in study.trials)
    expected = sorted(itertools.product([1e-3, 1e-2], [0.25, 0.5], [1, 2]))
    assert visited == expected  # each grid point once, nothing else
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # The knob reached training: epochs_run follows the sampled epochs.
    assert all(t.user_attrs["training"]["epochs_run"] == t.params["epochs"]
               for t in study.trials)


def test_run_records_objectives_and_attributes() -> None:
    study = ecotune.run(tiny_spec(storage="sqlite:///run.db"))
    assert len(study.trials) == 3
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        accuracy, energy_j = trial.values
        assert accuracy == trial.user_attrs["training"]["val_accuracy"]
        assert energy_j == trial.user_attrs["energy_j"] > 0
        assert trial.user_attrs["energy_meter"] == auto_meter_name()
        curve = trial.user_attrs["training"]["learning_curve"]
        assert [r["epoch"] for r in curve] == [1, 2] and curve[-1]["val_accuracy"] == accuracy
        assert trial.params["width"] in (0.25, 0.5)
    # test_evaluation = "front": every trial of the final front has its test accuracy, in
    # a window of its own (not in energy_j); a dominated trial may lack it, never half.
    for trial in study.best_trials:
        assert 0 <= trial.user_attrs["test_accuracy"] <= 1
    for trial in study.trials:
        tested = "test_accuracy" in trial.user_attrs
        assert tested == ("evaluation_energy_j" in trial.user_attrs)
        assert tested == ("activation_density" in trial.user_attrs)


def test_run_adds_trials_and_seed_repeats() -> None:
    first = ecotune.run(tiny_spec(storage="sqlite:///again.db", n_trials=2))
    params = [t.params for t in first.trials]
    again = ecotune.run(tiny_spec(storage="sqlite:///again.db", n_trials=2))
    assert len(again.trials) == 4
    other = ecotune.run(tiny_spec(storage="sqlite:///other.db", n_trials=2))
    assert [t.params for t in other.trials] == params  # same seed, same samples


def test_a_failing_trial_is_recorded_and_the_study_goes_on() -> None:
    spec = tiny_spec(storage="sqlite:///fail.db", n_trials=3)
    spec["training"] = {"epochs": 3, "optimizer": "sgd"}
    spec["search_space"] = {"lr": {"type": "categorical", "choices": [1e6, 1e-2]}}
    spec["energy"] = {"meter": "cputime"}
    study = ecotune.run(spec)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(failed) + len(done) == 3
    assert failed, "lr = 1e6 with SGD should diverge"
    assert all("FloatingPointError: training loss became" in t.user_attrs["fail_reason"]
               for t in failed)
    assert all(t.params["lr"] == 1e6 for t in failed)
    # Energy spent by a failed trial is recorded too.
    assert all(t.user_attrs["energy_j"] >= 0 for t in failed)


def test_fake_data_study_runs_with_the_cnn() -> None:
    spec = tiny_spec(storage="sqlite:///fake.db", n_trials=1)
    spec["data"] = {"name": "fake", "n_samples": 120, "image_shape": [3, 16, 16],
                    "n_classes": 3}
    spec["model"] = {"name": "cnn"}
    spec["training"] = {"epochs": 1}
    study = ecotune.run(spec)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
