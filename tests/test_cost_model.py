"""The skopt sampler's energy-aware option: expected improvement per predicted joule."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import ecotune
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
    study.optimize(objective, n_trials=11)  # 5 GP proposals: each refits the GP
    return np.array([t.params["x"] for t in study.trials[6:]])


@pytest.mark.slow
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


def _mixed_objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    n = trial.suggest_int("n", 0, 4)
    return 0.8 + 0.05 * x - 0.1 * (y - 0.5) ** 2 + 0.01 * n, float(np.exp(3.0 * x) + n)


def _study(sampler: SkoptSampler, n_trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.set_metric_names(["accuracy", "energy_j"])
    study.optimize(_mixed_objective, n_trials=n_trials)
    return study


@pytest.mark.parametrize("options", [{}, {"cost_objective": "energy_j", "cost_exponent": 0.0}])
@pytest.mark.slow
def test_without_a_cost_weight_every_proposal_is_scikit_optimizes_own_ask(options):
    """Plain and with cost_exponent = 0: each of the 7 GP proposals of a 12-trial study is
    what skopt.Optimizer.ask() proposes, told the same points, with the random_state the
    sampler documents drawing."""
    from skopt import Optimizer
    from skopt.space import Integer, Real

    from ecotune.samplers import parego_scalarize

    seed, startup, n_points = 11, 5, 300
    study = _study(SkoptSampler(seed=seed, n_startup_trials=startup, n_candidates=n_points,
                                **options), n_trials=12)
    rng = np.random.RandomState(seed)  # the sampler's draws, in its order
    for trial in study.trials[startup:]:
        told = study.trials[:trial.number]
        state = rng.randint(2**31 - 1)
        weights = rng.dirichlet(np.ones(2))
        values = np.array([t.values for t in told]) * [-1.0, 1.0]  # both to minimise
        reference = Optimizer([Integer(0, 4), Real(0.0, 1.0), Real(0.0, 1.0)],  # n, x, y
                              base_estimator="GP", n_initial_points=0, acq_func="EI",
                              acq_optimizer="sampling",
                              acq_optimizer_kwargs={"n_points": n_points}, random_state=state)
        reference.tell([[t.params["n"], t.params["x"], t.params["y"]] for t in told],
                       parego_scalarize(values, weights).tolist())
        n, x, y = reference.ask()
        assert (trial.params["n"], trial.params["x"], trial.params["y"]) == (n, x, y)


def test_the_cost_aware_candidates_are_the_ones_scikit_optimize_evaluated():
    """A vanishing exponent ranks skopt's own candidates by EI alone: the same point."""
    from skopt import Optimizer
    from skopt.space import Real

    from ecotune.samplers._cost_model import cost_aware_proposal

    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, size=(8, 2)).tolist()
    ys = [(a - 0.3) ** 2 + b for a, b in xs]
    for state in range(3):
        optimizer = Optimizer([Real(0.0, 1.0), Real(0.0, 1.0)], base_estimator="GP",
                              n_initial_points=0, acq_func="EI", acq_optimizer="sampling",
                              acq_optimizer_kwargs={"n_points": 400}, random_state=state)
        before = optimizer.rng.get_state()
        optimizer.tell(xs, ys)
        costs = np.exp(3 * np.array(xs)[:, 0])
        expected = optimizer.ask()
        assert cost_aware_proposal(optimizer, before, costs, 1e-9) == expected
        assert cost_aware_proposal(optimizer, before, costs, 0.0) == expected


def test_ei_per_joule_does_not_propose_an_evaluated_point_again():
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        a, b = trial.suggest_int("a", 0, 3), trial.suggest_int("b", 0, 3)
        return 0.1 * a + 0.05 * b, float(1 + a + b)  # the cheapest point is also the worst

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SkoptSampler(
        seed=0, n_startup_trials=3, n_candidates=200, cost_objective="energy_j",
        cost_exponent=2.0))
    study.set_metric_names(["accuracy", "energy_j"])
    study.optimize(objective, n_trials=10)
    points = [(t.params["a"], t.params["b"]) for t in study.trials]
    for i in range(3, len(points)):
        assert points[i] not in points[:i]


def test_cost_cooling_falls_from_one_to_zero_over_the_trials_budget(monkeypatch):
    """Budget 10 trials, 4 of them startup: alpha is 1 at the first GP trial, 1/2 midway
    (7 spent) and 1/6 at the last; the proposals use exactly those exponents."""
    from ecotune.samplers import _cost_model

    sampler = SkoptSampler(seed=0, n_startup_trials=4, n_candidates=100,
                           cost_objective="energy_j", cost_cooling=True,
                           cost_budget_trials=10)
    assert [sampler.cost_alpha([1.0] * k) for k in (4, 7, 10, 12)] == [1.0, 0.5, 0.0, 0.0]
    seen = []
    real = _cost_model.cost_aware_proposal

    def spy(optimizer, rng_state, costs, alpha):
        seen.append(alpha)
        return real(optimizer, rng_state, costs, alpha)

    monkeypatch.setattr(_cost_model, "cost_aware_proposal", spy)
    _study(sampler, n_trials=10)
    assert seen == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_cost_cooling_over_an_energy_budget():
    sampler = SkoptSampler(n_startup_trials=2, cost_objective="energy_j", cost_exponent=2.0,
                           cost_cooling=True, cost_budget=100.0)
    # Startup spent 20 J of 100: alpha = cost_exponent x (100 - spent) / 80.
    assert sampler.cost_alpha([15.0, 5.0]) == 2.0
    assert sampler.cost_alpha([15.0, 5.0, 40.0]) == 1.0
    assert sampler.cost_alpha([15.0, 5.0, 40.0, 40.0]) == 0.0
    assert sampler.cost_alpha([15.0, 5.0, 40.0, 90.0]) == 0.0
    # Startup over the budget: plain EI at once.
    assert sampler.cost_alpha([60.0, 60.0]) == 0.0


@pytest.mark.parametrize("options, message", [
    ({"cost_objective": "energy_j", "cost_exponent": -1.0}, "cost_exponent must be a number >= 0"),
    ({"cost_objective": "energy_j", "cost_exponent": float("nan")}, "cost_exponent must be"),
    ({"cost_objective": "energy_j", "cost_exponent": "1"}, "cost_exponent must be"),
    ({"cost_objective": "energy_j", "cost_cooling": "yes", "cost_budget_trials": 3},
     "cost_cooling must be true or false"),
    ({"cost_cooling": True, "cost_budget_trials": 3}, "cost_cooling needs a cost_objective"),
    ({"cost_objective": "energy_j", "cost_cooling": True}, "exactly one budget"),
    ({"cost_objective": "energy_j", "cost_cooling": True, "cost_budget": 10.0,
      "cost_budget_trials": 3}, "exactly one budget"),
    ({"cost_objective": "energy_j", "cost_cooling": True, "cost_budget": 0.0},
     "cost_budget must be a number > 0"),
    ({"cost_objective": "energy_j", "cost_cooling": True, "cost_budget_trials": 2.5},
     "cost_budget_trials must be an integer > 0"),
    ({"cost_objective": "energy_j", "cost_budget": 10.0}, "only used with cost_cooling"),
    ({"cost_objective": "energy_j", "acq_func": "LCB"}, "cost_objective needs acq_func"),
    ({"cost_objective": 3}, "cost_objective must be an objective's name"),
])
def test_bad_cost_options_are_refused_by_name(options, message):
    from ecotune.samplers import make_sampler

    with pytest.raises(ValueError, match=message):
        make_sampler("skopt", options=options)
    with pytest.raises(ecotune.SpecError, match="sampler.options: .*" + message):
        ecotune.load_spec({"study": {"name": "x", "sampler": {"name": "skopt",
                                                               "options": options}}})


def test_a_study_file_cost_objective_must_be_one_of_its_objectives():
    with pytest.raises(ecotune.SpecError, match="cost_objective 'co2_g' is not one of"):
        ecotune.load_spec({"study": {"name": "x", "sampler": {
            "name": "skopt", "options": {"cost_objective": "co2_g"}}}})
    spec = ecotune.load_spec({"study": {"name": "x", "sampler": {"name": "skopt", "options": {
        "cost_objective": "energy_j", "cost_cooling": True, "cost_budget": 5000.0}}}})
    assert spec.study.sampler.options["cost_budget"] == 5000.0
