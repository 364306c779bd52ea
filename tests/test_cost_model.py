"""The skopt sampler's energy-aware option: expected improvement per predicted joule."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from ecotune.samplers import SkoptSampler
from ecotune.samplers._cost_model import log_cost_fit


def test_the_log_cost_fit_recovers_a_product_of_powers():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(20, 2))
    log_cost = 1.0 + 2.0 * x[:, 0] - 0.5 * x[:, 1]
    assert log_cost_fit(x, log_cost) == pytest.approx([1.0, 2.0, -0.5], abs=0.01)


def _proposals(cost_objective: str | None) -> np.ndarray:
    # Accuracy rises with x a little; energy grows 20-fold over the range.
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        return 0.8 + 0.05 * x - 0.1 * (y - 0.5) ** 2, float(np.exp(3.0 * x))

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SkoptSampler(
        seed=0, n_startup_trials=6, n_candidates=500, cost_objective=cost_objective))
    study.set_metric_names(["accuracy", "energy_j"])
    study.optimize(objective, n_trials=16)
    return np.array([t.params["x"] for t in study.trials[6:]])


def test_ei_per_joule_proposes_cheaper_trials_than_plain_ei():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain, aware = _proposals(None), _proposals("energy_j")
    # Same seed and start; the energy-aware proposals sit lower on the cost axis.
    assert np.mean(np.exp(3 * aware)) < np.mean(np.exp(3 * plain))


def test_an_unknown_cost_objective_is_refused():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SkoptSampler(
        seed=0, n_startup_trials=1, cost_objective="co2_g"))
    study.set_metric_names(["accuracy", "energy_j"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1)
    with pytest.raises(ValueError, match="cost_objective 'co2_g' is not an objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1, catch=())
