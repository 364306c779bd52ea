"""ecotune.pareto: feasibility, dominance and exact hypervolume against brute force."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import optuna
import pytest

from ecotune.pareto import ParetoFront, dominated, hypervolume, is_feasible, non_dominated


def _dominates(a, b, maximize) -> bool:
    no_worse = all((x >= y) if mx else (x <= y) for x, y, mx in zip(a, b, maximize))
    better = any((x > y) if mx else (x < y) for x, y, mx in zip(a, b, maximize))
    return no_worse and better


def _grid_hypervolume(points, reference, maximize) -> int:
    """Count the unit cells of the integer grid that some point dominates."""
    costs = [[-v if mx else v for v, mx in zip(p, maximize)] for p in points]
    ref = [-v if mx else v for v, mx in zip(reference, maximize)]
    low = [min([c[i] for c in costs] + [ref[i]]) for i in range(len(ref))]
    return sum(1 for cell in itertools.product(*(range(lo, r) for lo, r in zip(low, ref)))
               if any(all(c[i] <= cell[i] for i in range(len(ref))) for c in costs))


def test_feasibility_is_optunas_rule_for_set_constraint() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", -1.0, 1.0)
        if trial.number % 3:  # every third trial records no constraint at all
            trial.set_constraint("budget", x)
        return x, 1.0

    study.optimize(objective, n_trials=30)
    feasible = {t.number for t in study.trials if is_feasible(t)}
    assert feasible == {t.number for t in study.trials
                        if t.number % 3 == 0 or t.params["x"] <= 0}
    # The same set Optuna's own best_trials picks from.
    assert {t.number for t in study.best_trials} <= feasible
    assert 0 < len(feasible) < 30
    legacy = optuna.trial.create_trial(values=[1.0, 1.0], system_attrs={"constraints": [0.5]})
    assert not is_feasible(legacy)
    # At the boundary: a constraint of exactly 0 is feasible, the least bit above is not.
    at_zero = optuna.trial.create_trial(values=[1.0, 1.0], constraints={"budget": 0.0})
    above = optuna.trial.create_trial(values=[1.0, 1.0], constraints={"budget": 5e-324})
    assert is_feasible(at_zero) and not is_feasible(above)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("maximize", [[False], [True, False], [False, True, False],
                                      [True, True, False, False]])
def test_non_dominated_matches_all_pairs(seed: int, maximize: list[bool]) -> None:
    rng = random.Random(seed)
    points = [[rng.randint(0, 5) for _ in maximize] for _ in range(rng.randint(0, 40))]
    if points and seed % 3 == 0:
        points.append([float("nan")] * len(maximize))  # kept, dominates nothing
    values = np.array(points, dtype=float).reshape(-1, len(maximize))
    expected = [not any(_dominates(q, p, maximize) for q in points if q is not p)
                for p in points]
    assert non_dominated(values, maximize).tolist() == expected


def test_non_dominated_is_fast_enough_for_big_studies() -> None:
    # 20,000 points: all-pairs would need 20,000^2 booleans per objective (GBs).
    rng = np.random.default_rng(0)
    values = rng.random((20_000, 2))
    mask = non_dominated(values, [True, False])
    front = values[mask]
    order = np.argsort(front[:, 0])
    assert (np.diff(front[order, 1]) > 0).all()  # more accuracy costs more energy
    dominated = values[~mask][:200]
    assert all(((front[:, 0] >= p[0]) & (front[:, 1] <= p[1])).any() for p in dominated)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("maximize", [[True, False], [False, True, False],
                                      [True, False, False, True]])
def test_front_grows_with_exact_hypervolume(seed: int, maximize: list[bool]) -> None:
    rng = random.Random(seed)
    m = len(maximize)
    reference = [(-1 if mx else 7) for mx in maximize]
    front = ParetoFront(maximize, reference=np.array(reference))
    seen: list[list[int]] = []
    for _ in range(25 if m < 4 else 12):
        # Integer coordinates, some beyond the reference: ties and duplicates occur.
        point = [rng.randint(-1, 7) for _ in range(m)]
        no_worse = [q for q in seen if all((a >= b) if mx else (a <= b)
                                          for a, b, mx in zip(q, point, maximize))]
        assert front.add(point) == (not no_worse)
        seen.append(point)
        assert front.hypervolume == pytest.approx(_grid_hypervolume(seen, reference, maximize))
        assert front.hypervolume == pytest.approx(hypervolume(seen, reference, maximize))
        mask = non_dominated(np.array(seen, dtype=float), maximize)
        expected = {tuple(p) for p, keep in zip(seen, mask) if keep}
        assert {tuple(p) for p in front.points.tolist()} == expected
        assert len(front) == len(expected)


@pytest.mark.parametrize("m", [2, 3])
def test_front_matches_from_scratch_on_float_points(m: int) -> None:
    rng = np.random.default_rng(m)
    maximize = [True] + [False] * (m - 1)
    points = rng.random((400, m))
    reference = [0.0] + [1.0] * (m - 1)
    front = ParetoFront(maximize, reference)
    for i, p in enumerate(points):
        front.add(p)
        if i % 40 == 39:
            assert front.hypervolume == pytest.approx(
                hypervolume(points[: i + 1], reference, maximize), rel=1e-12)


def test_front_edge_cases() -> None:
    front = ParetoFront([True, False])
    assert front.add([0.5, 1.0]) and not front.add([float("nan"), 0.0])
    assert not front.add([0.5, 1.0])  # a duplicate changes nothing
    with pytest.raises(ValueError, match="no reference point"):
        _ = front.hypervolume
    with pytest.raises(ValueError, match="a point needs 2 values"):
        front.add([1.0])
    with pytest.raises(ValueError, match="reference must have 2 values"):
        ParetoFront([True, False], reference=[0.0])
    with pytest.raises(ValueError, match="reference must be finite"):
        ParetoFront([True, False], reference=[0.0, np.inf])
    single = ParetoFront([False], reference=[5.0])
    single.add([2.0])
    single.add([3.0])
    assert single.hypervolume == 3.0 and single.points.tolist() == [[2.0]]


def test_log_hv_difference_is_log10_of_the_gap_floored() -> None:
    from ecotune.pareto import LOG_HV_DIFFERENCE_FLOOR, log_hv_difference

    ratios = np.array([0.0, 0.5, 0.99, 0.995, 1.0, 1.0 + 1e-15])
    expected = np.log10(np.maximum(1 - ratios, 10.0 ** LOG_HV_DIFFERENCE_FLOOR))
    assert log_hv_difference(ratios).tolist() == pytest.approx(expected.tolist())
    assert log_hv_difference([1.0])[0] == LOG_HV_DIFFERENCE_FLOOR


def test_energy_ratio_censors_runs_that_never_reached_the_level() -> None:
    from ecotune.pareto import energy_ratio

    nan = float("nan")
    exact = energy_ratio([1.0, 3.0], [9.0, 9.0], [4.0, 4.0], [9.0, 9.0])
    assert (exact.value, exact.bound) == (0.5, "=") and exact.low <= 0.5 <= exact.high
    # A baseline run that never reached it counts its total: the ratio is an upper bound.
    upper = energy_ratio([2.0, 2.0], [9.0, 9.0], [4.0, nan], [9.0, 8.0])
    assert (upper.value, upper.bound) == (pytest.approx(2.0 / 6.0), "<=")
    lower = energy_ratio([2.0, nan], [9.0, 6.0], [4.0, 4.0], [9.0, 9.0])
    assert (lower.value, lower.bound) == (pytest.approx(1.0), ">=")
    neither = energy_ratio([nan], [9.0], [nan], [9.0])
    assert neither.bound == "" and neither.text() == "n/a"
    # Same seed, same interval; every draw within the range of possible ratios.
    assert energy_ratio([1.0, 3.0], [9.0, 9.0], [4.0, 2.0], [9.0, 9.0]) == energy_ratio(
        [1.0, 3.0], [9.0, 9.0], [4.0, 2.0], [9.0, 9.0])


def test_dominated_at_its_edges() -> None:
    """An equal point does not dominate; better in one objective and equal in the other
    does; better in one and worse in the other does not (accuracy up, energy down)."""
    maximize = [True, False]
    assert not dominated([0.9, 5.0], [[0.9, 5.0]], maximize)
    assert dominated([0.9, 5.0], [[0.9, 4.0]], maximize)
    assert dominated([0.9, 5.0], [[0.95, 5.0]], maximize)
    assert not dominated([0.9, 5.0], [[0.95, 6.0], [0.8, 1.0]], maximize)
    assert not dominated([0.9, 5.0], [], maximize)


@pytest.mark.parametrize("maximize", [[True, False], [False, False], [True, False, True]])
def test_a_fronts_dominates_answers_as_dominated_against_its_points(maximize) -> None:
    # Coarse values, so that ties in one objective and equal points are common; a NaN
    # is dominated by nothing, an infinity by any finite point as good elsewhere.
    rng = np.random.default_rng(3)
    m = len(maximize)
    for _ in range(30):
        front = ParetoFront(maximize, reference=[10.0 if not mx else 0.0 for mx in maximize])
        for _ in range(12):
            front.add(rng.integers(0, 6, m).astype(float).tolist())
        probes = [rng.integers(0, 6, m).astype(float).tolist() for _ in range(40)]
        probes += [[math.nan] + [1.0] * (m - 1), [math.inf] * m, [-math.inf] + [3.0] * (m - 1)]
        for probe in probes:
            assert front.dominates(probe) == dominated(probe, front.points, maximize), probe
            assert front.dominates(np.array(probe)) == front.dominates(probe)


def test_study_dominates_reads_the_studys_complete_feasible_trials() -> None:
    from ecotune.rules import study_dominates, study_front

    study = optuna.create_study(directions=["maximize", "minimize"])
    maximize = [True, False]
    assert not study_dominates(study, [0.1, 100.0], maximize)  # an empty study
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1.0], constraints={"b": 1.0}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert not study_dominates(study, [0.1, 100.0], maximize)  # infeasible, failed: none
    study.add_trial(optuna.trial.create_trial(values=[0.8, 5.0]))
    for probe in ([0.7, 6.0], [0.8, 5.0], [0.8, 6.0], [0.85, 6.0], [0.7, 4.0]):
        assert study_dominates(study, probe, maximize) == dominated(
            probe, study_front(study, [0, 1], maximize), maximize)
    assert study_dominates(study, [0.8, 6.0], maximize)
    assert not study_dominates(study, [0.8, 5.0], maximize)  # equal
