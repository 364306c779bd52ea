"""pareto_front agrees with a brute-force non-dominance check."""

from __future__ import annotations

import itertools
import random

import numpy as np
import optuna
import pytest

import ecotune
from ecotune.report import non_dominated, trials_frame


def _dominates(a, b, maximize) -> bool:
    better_or_equal = all((x >= y) if mx else (x <= y) for x, y, mx in zip(a, b, maximize))
    strictly = any((x > y) if mx else (x < y) for x, y, mx in zip(a, b, maximize))
    return better_or_equal and strictly


def _brute_force_front(points, maximize) -> set[int]:
    return {i for i, p in enumerate(points)
            if not any(_dominates(q, p, maximize) for j, q in enumerate(points) if j != i)}


def _study(points, directions, states=None) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.set_metric_names([f"o{i}" for i in range(len(directions))])
    for i, p in enumerate(points):
        state = (states or {}).get(i, optuna.trial.TrialState.COMPLETE)
        values = list(p) if state == optuna.trial.TrialState.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(values=values, state=state,
                                                  params={"x": float(i)},
                                                  distributions={"x": optuna.distributions.
                                                                 FloatDistribution(0, 1000)}))
    return study


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("directions", [["maximize", "minimize"],
                                        ["minimize", "minimize", "maximize"]])
def test_front_matches_brute_force(seed: int, directions: list[str]) -> None:
    rng = random.Random(seed)
    # Coarse values so that ties and duplicates occur.
    points = [tuple(rng.randint(0, 6) for _ in directions) for _ in range(40)]
    maximize = [d == "maximize" for d in directions]
    study = _study(points, directions)
    front = ecotune.pareto_front(study)
    assert set(front["trial"]) == _brute_force_front(points, maximize)
    assert list(front.columns[:len(directions) + 1]) == ["trial", *study.metric_names]


def test_front_skips_incomplete_and_infeasible_trials() -> None:
    points = [(0.9, 10.0), (0.95, 20.0), (0.99, 1.0), (0.5, 0.5)]
    study = _study(points, ["maximize", "minimize"],
                   states={2: optuna.trial.TrialState.FAIL})
    # An infeasible trial that would dominate everything (constraints= records them as
    # trial.set_constraint does in Optuna 5).
    study.add_trial(optuna.trial.create_trial(values=[1.0, 0.1], constraints={"budget": 0.5}))
    front = ecotune.pareto_front(study)
    assert set(front["trial"]) == {0, 1, 3}
    assert list(front["o0"]) == sorted(front["o0"], reverse=True)  # best accuracy first


def test_non_dominated_handles_duplicates_and_validates_shape() -> None:
    values = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    assert non_dominated(values, [True, False]).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="values must be"):
        non_dominated(values, [True])


def test_empty_study_gives_an_empty_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert ecotune.pareto_front(study).empty
    assert "on_front" in trials_frame(study)


def test_front_matches_itertools_on_a_real_run() -> None:
    from tests.conftest import tiny_spec

    spec = tiny_spec(storage="sqlite:///front.db", n_trials=5)
    spec["energy"] = {"meter": "cputime"}
    study = ecotune.run(spec)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    expected = {t.number for t in trials
                if not any(_dominates(u.values, t.values, [True, False])
                           for u, in itertools.product(trials) if u is not t)}
    assert set(ecotune.pareto_front(study)["trial"]) == expected
