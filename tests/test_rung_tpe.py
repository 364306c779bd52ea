"""The rung_tpe sampler: TPE fit on successive halving's rung points (BOHB's idea)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import ecotune
from ecotune.names import ATTR_SUCCESSIVE_HALVING
from ecotune.samplers import RungTPESampler, make_sampler, rung_view

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(-1.0, 1.0),
         "c": CategoricalDistribution(["a", "b"])}
NAMES = ["accuracy", "energy_j"]
DIRECTIONS = ["maximize", "minimize"]


def _trial(params: dict, values: list[float] | None, points: dict,
           state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    return create_trial(params=params, distributions=SPACE, values=values, state=state,
                        user_attrs={ATTR_SUCCESSIVE_HALVING: points})


def _history(n: int) -> list[tuple[dict, list[float], dict]]:
    """``n`` trials: params, final values, rung points at 1 and (every third) 3 epochs;
    the rung-1 accuracy is ordered unlike the final one, so fitting on either differs."""
    out = []
    for i in range(n):
        x, y = (i * 0.37) % 1.0, ((i * 0.61) % 2.0) - 1.0
        params = {"x": x, "y": y, "c": "ab"[i % 2]}
        final = [0.5 + 0.4 * x, 10.0 + 5.0 * y]
        points = {"1": [0.9 - 0.5 * x, 1.0 + abs(y)]}
        if i % 3 == 0:
            points["3"] = [0.6 + 0.3 * y, 3.0 + x]
        out.append((params, final, points))
    return out


def _study(sampler: optuna.samplers.BaseSampler, trials) -> optuna.Study:
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    study.set_metric_names(NAMES)
    for t in trials:
        study.add_trial(t)
    return study


def _proposals(study: optuna.Study, k: int = 5) -> list[dict]:
    out = []
    for _ in range(k):
        trial = study.ask(SPACE)
        out.append(trial.params)
        study.tell(trial, state=TrialState.FAIL)  # a failed trial is in no view
    return out


def test_the_view_is_the_largest_rung_that_enough_finished_trials_reached() -> None:
    trials = [
        _trial({"x": 0.1, "y": 0.0, "c": "a"}, [0.9, 30.0], {"1": [0.5, 1.0], "3": [0.8, 3.0]}),
        _trial({"x": 0.2, "y": 0.0, "c": "a"}, [0.7, 3.0], {"1": [0.4, 1.1], "3": [0.7, 3.1]}),
        _trial({"x": 0.3, "y": 0.0, "c": "b"}, None, {"1": [0.3, 0.9]}, TrialState.PRUNED),
        _trial({"x": 0.4, "y": 0.0, "c": "b"}, None, {"1": [0.2, 1.0], "3": [0.3, 3.0]},
               TrialState.PRUNED),
        _trial({"x": 0.5, "y": 0.0, "c": "a"}, None, {"1": [0.6, 1.0], "3": [0.9, 3.0]},
               TrialState.RUNNING),  # not counted; passed on as it is
    ]
    rung, seen = rung_view(trials, NAMES, min_points=3)
    assert rung == 3  # three finished trials at 3 (the running one does not count)
    assert [t.params["x"] for t in seen] == [0.1, 0.2, 0.4, 0.5]  # 0.3 never reached 3
    assert [t.values for t in seen[:3]] == [[0.8, 3.0], [0.7, 3.1], [0.3, 3.0]]
    assert all(t.state == TrialState.COMPLETE for t in seen[:3])
    assert seen[3] is trials[4]
    # The stored trials are untouched.
    assert trials[0].values == [0.9, 30.0] and trials[3].state == TrialState.PRUNED

    assert rung_view(trials, NAMES, min_points=4)[0] == 1  # only rung 1 has four
    assert [t.values[0] for t in rung_view(trials, NAMES, 4)[1][:4]] == [0.5, 0.4, 0.3, 0.2]
    assert rung_view(trials, NAMES, min_points=5) == (None, trials)
    # The objectives are mapped by name, whatever their order; others keep their value.
    both = [_trial({"x": 0.1, "y": 0.0, "c": "a"}, [30.0, 0.9, 7.0], {"1": [0.5, 1.0]}),
            _trial({"x": 0.2, "y": 0.0, "c": "a"}, None, {"1": [0.4, 1.1]}, TrialState.PRUNED)]
    rung, seen = rung_view(both, ["energy_j", "accuracy", "duration_s"], min_points=2)
    assert rung == 1 and [t.values for t in seen] == [[1.0, 0.5, 7.0]]  # pruned: no duration
    # Without accuracy and energy_j among the objectives there is no rung point to use.
    assert rung_view(trials, ["loss", "energy_j"], min_points=1) == (None, trials)


def test_without_a_full_rung_it_proposes_exactly_what_tpe_proposes() -> None:
    history = [_trial(p, v, {"1": pt["1"]}) for p, v, pt in _history(20)]
    ours = _study(RungTPESampler(seed=4, min_points=21, multivariate=True), history)
    tpe = _study(optuna.samplers.TPESampler(seed=4, multivariate=True), history)
    assert _proposals(ours) == _proposals(tpe)


def test_at_a_rung_it_proposes_what_tpe_proposes_on_the_rung_values() -> None:
    """RungTPE on the stored trials = TPE on trials whose values are the rung-3 points
    (the largest rung with at least 5 points): the view, and only the view, differs."""
    history = _history(20)
    stored = [_trial(p, v, pt) for p, v, pt in history]
    at_rung_3 = [_trial(p, pt["3"], pt) for p, _, pt in history if "3" in pt]
    ours = _proposals(_study(RungTPESampler(seed=7, min_points=5, multivariate=True,
                                            n_startup_trials=5), stored))
    expected = _proposals(_study(optuna.samplers.TPESampler(
        seed=7, multivariate=True, n_startup_trials=5), at_rung_3))
    plain = _proposals(_study(optuna.samplers.TPESampler(
        seed=7, multivariate=True, n_startup_trials=5), stored))
    assert ours == expected
    assert ours != plain  # a sampler ignoring the rungs would fail the first assertion


def test_the_factory_and_the_study_file_take_it_with_successive_halving_only() -> None:
    sampler = make_sampler("rung_tpe", seed=0, options={"min_points": 4})
    assert isinstance(sampler, RungTPESampler) and sampler.min_points == 4
    with pytest.raises(ValueError, match="min_points must be an integer >= 1"):
        make_sampler("rung_tpe", options={"min_points": 0})
    halving = {"enabled": True, "method": "successive_halving", "min_epochs": 1}
    spec = ecotune.load_spec({"study": {"name": "r", "sampler": "rung_tpe"},
                              "early_stopping": halving})
    assert spec.study.sampler.name == "rung_tpe"
    for early_stopping in ({}, {"enabled": True}, {**halving, "enabled": False}):
        with pytest.raises(ecotune.SpecError, match="rung_tpe sampler needs"):
            ecotune.load_spec({"study": {"name": "r", "sampler": "rung_tpe"},
                               "early_stopping": early_stopping})
