"""One suite that every sampler by name must pass, plus the skopt sampler's own parts."""

from __future__ import annotations

import functools
import math
import typing

import numpy as np
import optuna
import pytest

import ecotune
from ecotune.names import SAMPLERS
from ecotune.samplers import make_sampler
from ecotune.samplers._skopt import SkoptSampler, parego_scalarize
from ecotune.spec import SamplerSpec

GRID = {"lr": [1e-3, 1e-2, 1e-1], "width": [0.25, 1.0], "epochs": [1, 3, 5],
        "optimizer": ["sgd", "adam"]}
# Few startup trials, so that the model-based samplers use their model within the suite.
OPTIONS = {"tpe": {"n_startup_trials": 3}, "rung_tpe": {"n_startup_trials": 3},
           "gp": {"n_startup_trials": 3},
           "skopt": {"n_startup_trials": 3, "n_candidates": 200},
           "nsga2": {"population_size": 4}}
N_TRIALS = 6  # GPSampler takes about 1 s per model-based trial here


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    """Cheap, synthetic: 'accuracy' rises with width and epochs, 'energy' with both too."""
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    width = trial.suggest_float("width", 0.25, 1.0)
    epochs = trial.suggest_int("epochs", 1, 5)
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    accuracy = 1 - math.exp(-width * epochs) - 0.1 * abs(math.log10(lr) + 2)
    accuracy -= 0.05 * (optimizer == "sgd")
    return accuracy, width * epochs * (1.2 if optimizer == "adam" else 1.0)


@functools.cache  # the suite's first run is shared by its tests; each repeat is fresh
def _first_run(name: str) -> optuna.Study:
    return _run(name)


def _run(name: str, seed: int = 3) -> optuna.Study:
    study = ecotune.create_study(f"suite-{name}", storage=None, sampler=name, seed=seed,
                                 grid=GRID, sampler_options=OPTIONS.get(name))
    study.optimize(_objective, n_trials=N_TRIALS)
    return study


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_completes_a_two_objective_study_inside_the_space(name: str) -> None:
    study = _first_run(name)
    assert len(study.trials) == N_TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert 1e-3 <= t.params["lr"] <= 1e-1
        assert 0.25 <= t.params["width"] <= 1.0
        assert isinstance(t.params["epochs"], int) and 1 <= t.params["epochs"] <= 5
        assert t.params["optimizer"] in ("sgd", "adam")
    if name == "grid":
        assert all(t.params[k] in GRID[k] for t in study.trials for k in GRID)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_repeats_exactly_with_a_seed(name: str) -> None:
    first = [t.params for t in _first_run(name).trials]
    again = [t.params for t in _run(name).trials]
    assert first == again


def test_every_sampler_name_a_study_file_accepts_makes_a_sampler() -> None:
    """The study file's sampler names are the factory's (one vocabulary): each one
    validates and builds; a name outside it fails in both places."""
    for name in typing.get_args(SamplerSpec.model_fields["name"].annotation):
        grid = {"x": [0.0, 1.0]} if name == "grid" else None
        assert isinstance(make_sampler(name, seed=0, grid=grid), optuna.samplers.BaseSampler)
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes")
    with pytest.raises(ecotune.SpecError, match="sampler"):
        ecotune.load_spec({"study": {"name": "x", "sampler": "cmaes"}})


def test_study_file_sampler_options_reach_the_skopt_sampler() -> None:
    spec = ecotune.load_spec({"study": {"name": "x", "sampler": {
        "name": "skopt", "options": {"n_startup_trials": 4, "acq_func": "LCB"}}}})
    sampler = make_sampler(spec.study.sampler.name, seed=1, options=spec.study.sampler.options)
    assert isinstance(sampler, SkoptSampler)
    assert (sampler.n_startup_trials, sampler.acq_func, sampler.seed) == (4, "LCB", 1)
    with pytest.raises(ValueError, match="sampler 'skopt': bad option"):
        make_sampler("skopt", options={"n_startup": 3})


def test_skopt_uses_the_gp_after_the_startup_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    import skopt

    calls = []
    real_tell = skopt.Optimizer.tell

    def tell(self, x, y, fit=True):
        calls.append((len(x), list(y)))
        return real_tell(self, x, y, fit=fit)

    monkeypatch.setattr(skopt.Optimizer, "tell", tell)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=SkoptSampler(seed=0, n_startup_trials=3,
                                                     n_candidates=200))
    study.optimize(_objective, n_trials=6)
    # Trials 3, 4 and 5 were proposed by the GP, told about 3, 4 and 5 complete trials.
    assert [n for n, _ in calls] == [3, 4, 5]
    # Multi-objective: every scalarised value lies in [0, 1 + rho].
    assert all(0 <= y <= 1.05 + 1e-12 for _, ys in calls for y in ys)


def test_skopt_handles_steps_log_ints_and_a_single_objective() -> None:
    def objective(trial: optuna.Trial) -> float:
        a = trial.suggest_float("a", 0.0, 1.0, step=0.25)
        b = trial.suggest_int("b", 2, 64, log=True)
        c = trial.suggest_int("c", 0, 10, step=5)
        d = trial.suggest_categorical("d", [None, 1.5, "x"])
        trial.suggest_float("fixed", 1.0, 1.0)
        return a + b + c + (d == "x")

    study = optuna.create_study(sampler=SkoptSampler(seed=1, n_startup_trials=2,
                                                     n_candidates=100))
    study.optimize(objective, n_trials=6)
    for t in study.trials:
        assert t.params["a"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert 2 <= t.params["b"] <= 64 and t.params["c"] in (0, 5, 10)
        assert t.params["d"] in (None, 1.5, "x") and t.params["fixed"] == 1.0


def test_parego_scalarisation() -> None:
    costs = np.array([[0.0, 4.0], [2.0, 0.0], [1.0, 2.0]])
    # Normalised: [[0, 1], [1, 0], [.5, .5]]; w = (.25, .75).
    got = parego_scalarize(costs, np.array([0.25, 0.75]))
    assert np.allclose(got, [0.75 + 0.05 * 0.75, 0.25 + 0.05 * 0.25, 0.375 + 0.05 * 0.5])
    assert np.allclose(parego_scalarize(np.ones((3, 2)), np.array([0.5, 0.5])), 0)
    with pytest.raises(ValueError, match="costs must be"):
        parego_scalarize(costs, np.array([1.0]))
