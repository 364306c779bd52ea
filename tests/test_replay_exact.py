"""The replay's results, pinned: each run's per-trial search energies, states, values and
hypervolume ratios equal what a brute-force oracle (bare Optuna, the same sampler and
seed, every rule worked out from scratch) gives, and with early stopping what the
objective's own trial attributes say. The replay keeps its accounting out of the study
for speed (benchmarks/search_efficiency.py times it against bare Optuna); these tests
are what holds it to the same answers."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest

from ecotune.objectives import OBJECTIVES
from ecotune.pareto import hypervolume, hypervolume_history
from ecotune.rules import search_energy_j
from ecotune.samplers import make_sampler
from ecotune.search import create_study, suggest_knobs
from ecotune.spec import CategoricalParam, load_spec
from ecotune.tabular import Method, read_table, replay
from ecotune.tabular._pareto import table_reference
from ecotune.tabular._record import table_spec
from ecotune.tabular._replay import TableObjective, _nearest
from ecotune.tabular._table import cell, write_rows

SPACE = {
    "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True,
           "grid": [1e-3, 3e-3, 1e-2, 3e-2]},
    "width": {"type": "float", "low": 0.25, "high": 2.0, "grid": [0.25, 0.5, 1.0, 2.0]},
    "batch_size": {"type": "categorical", "choices": [32, 64]},
    "epochs": {"type": "int", "low": 2, "high": 4, "grid": [2, 4]},
}


def _spec(test_evaluation: str = "front") -> dict:
    return {"study": {"name": "exact", "seed": 0},
            "training": {"test_evaluation": test_evaluation},
            "early_stopping": {"min_epochs": 1, "reduction_factor": 2, "margin": 0.0},
            "search_space": SPACE}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """64 configurations with seeded curves; two pairs share their final point (an equal
    point dominates nothing), one failed, and every trial has an evaluation energy."""
    rng = np.random.default_rng(7)
    rows = []
    keys = [(lr, w, b, e) for lr in SPACE["lr"]["grid"] for w in SPACE["width"]["grid"]
            for b in (32, 64) for e in (2, 4)]
    finals = {}
    for n, (lr, w, b, e) in enumerate(keys):
        knobs = {"lr": lr, "width": w, "batch_size": b, "epochs": e}
        if n == 5:
            rows.append({**knobs, "epoch": 0, "state": "FAIL", "final_energy_j": 0.7,
                         "epochs_run": 0})
            continue
        accuracy = np.sort(rng.uniform(0.3, 0.95, e)).round(3).tolist()
        energy = np.cumsum(rng.uniform(0.5, 3.0, e) * w).round(3).tolist()
        final = (accuracy[-1], energy[-1] + 0.25)
        if n in (9, 21):  # the same final point as the configuration before it
            accuracy[-1], final = finals[n - 1][0], finals[n - 1]
        finals[n] = final
        for epoch in range(1, e + 1):
            rows.append({**knobs, "epoch": epoch, "val_accuracy": accuracy[epoch - 1],
                         "energy_j": energy[epoch - 1], "elapsed_s": 0.1 * epoch,
                         "state": "COMPLETE", "accuracy": final[0],
                         "final_energy_j": final[1], "duration_s": 0.1 * e,
                         "epochs_run": e, "evaluation_energy_j": round(0.1 + 0.05 * n, 3)})
    path = tmp_path_factory.mktemp("exact") / "exact.csv"
    write_rows(path, list(SPACE), rows,
               header={"spec": json.dumps(table_spec(load_spec(_spec())))})
    return read_table(path)


def _nearest_cell(param, cells: list[str], value) -> str:
    """Brute force: the cell whose value (log value for a log knob) is nearest, the
    smallest of ties; a categorical value is its own cell."""
    if isinstance(param, CategoricalParam):
        return cell(value)
    def position(v: float) -> float:
        return math.log(v) if param.log else v
    by_value = sorted(cells, key=float)
    distances = [abs(position(float(c)) - position(float(value))) for c in by_value]
    return by_value[distances.index(min(distances))]


def _dominates(p, q, maximize) -> bool:
    better_or_equal = all((a >= b) if mx else (a <= b) for a, b, mx in zip(p, q, maximize))
    return better_or_equal and tuple(p) != tuple(q)


def _oracle(table, spec, sampler: str, seed: int, n_trials: int):
    """One run worked out from scratch: per trial its search energy, state, values and
    hypervolume ratio (a from-scratch hypervolume of every complete trial so far)."""
    objectives = spec.study.objectives
    maximize = [OBJECTIVES[o].direction == "maximize" for o in objectives]
    reference, reference_hv, _ = table_reference(table, objectives)
    cells = {k: sorted({key[i] for key in table.configs}) for i, k in enumerate(table.knobs)}
    complete: list[tuple[float, float]] = []
    energies: list[float] = []

    def objective(trial):
        knobs = suggest_knobs(trial, spec)
        key = tuple(_nearest_cell(spec.search_space[k], cells[k], knobs[k])
                    for k in table.knobs)
        record = table.configs[key]
        if record.failed:
            energies.append(record.final_energy_j)
            raise RuntimeError("failed")
        values = (float(record.finals["accuracy"]), record.final_energy_j)
        setting = spec.training.test_evaluation
        evaluated = setting == "all" or (setting == "front" and not any(
            _dominates(p, values, maximize) for p in complete))
        energies.append(record.final_energy_j
                        + (record.evaluation_energy_j if evaluated else 0.0))
        complete.append(values)
        return values

    study = optuna.create_study(
        directions=[OBJECTIVES[o].direction for o in objectives],
        sampler=make_sampler(sampler, seed, spec.grid() if sampler == "grid" else None, {}))
    ratios = []
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,),
                   callbacks=[lambda s, t: ratios.append(
                       hypervolume(complete, reference, maximize) / reference_hv
                       if complete else 0.0)])
    trials = study.trials
    return (energies, [t.state.name for t in trials],
            [tuple(t.values) if t.values is not None else None for t in trials], ratios)


@pytest.mark.parametrize("test_evaluation", ["front", "all", "none"])
@pytest.mark.parametrize("sampler", ["random", "tpe", "grid", "nsga2"])
def test_a_replayed_run_is_what_a_brute_force_oracle_gives(table, sampler, test_evaluation):
    spec = load_spec(_spec(test_evaluation))
    n = len(table.configs) if sampler == "grid" else 40
    runs = replay(table, spec, [Method(sampler, sampler, n_trials=n)], repeats=2)[sampler]
    for run in runs:
        energies, states, values, ratios = _oracle(table, spec, sampler, run.seed, n)
        assert run.energy_j.tolist() == energies  # exactly: the same sums of the same floats
        assert run.states == states and run.values == values
        assert run.hypervolume_ratio.tolist() == pytest.approx(ratios, rel=1e-12, abs=1e-15)
    if test_evaluation == "front":  # the rule matters here: some trial paid, some did not
        paid = [e - v[1] for run in runs for e, v in zip(run.energy_j, run.values) if v]
        assert any(p > 0 for p in paid) and any(p == 0 for p in paid)


@pytest.mark.parametrize("stopping,on_stop", [("successive_halving", "prune"),
                                              ("successive_halving", "complete"),
                                              ("predict", "complete"), ("none", "prune")])
def test_a_replayed_run_equals_the_objectives_own_trial_attributes(table, stopping, on_stop):
    # The replay leaves a trial that trains to the end out of the study and does its
    # accounting afterwards; the objective on its own writes every attribute and asks the
    # study for its front. Both must give the same run, stopped trials included.
    spec = load_spec(_spec()).with_settings(early_stopping={"on_stop": on_stop})
    method = Method("m", "tpe", stopping=stopping, n_trials=40,
                    early_stopping={"method": stopping} if stopping != "none" else {})
    replayed = replay(table, spec, [method], repeats=2)["m"]
    reference, reference_hv, maximize = table_reference(table, spec.study.objectives)
    for run in replayed:
        settings = spec.with_settings(early_stopping={**dict(method.early_stopping)})
        objective = TableObjective(table, settings, stopping)
        study = create_study(None, storage=None, sampler="tpe",
                             objectives=spec.study.objectives, seed=run.seed)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study.optimize(objective, n_trials=40, catch=(RuntimeError,))
        trials = study.trials
        assert run.energy_j.tolist() == [search_energy_j(t) or 0.0 for t in trials]
        assert run.states == [t.state.name for t in trials]
        assert run.hypervolume_ratio.tolist() == (
            hypervolume_history(trials, maximize, reference) / reference_hv).tolist()
        if stopping != "none":
            assert any(t.user_attrs.get("replay_stopped_at_epoch") for t in trials)


@pytest.mark.parametrize("positions", [[0.0], [1.0, 2.0, 4.0], [-3.0, -1.0, -1.0, 2.5],
                                       [0.5, 0.5, 0.5], np.log([1e-3, 3e-3, 1e-2]).tolist()])
def test_nearest_grid_position_is_numpys_argmin_of_the_distances(positions):
    rng = np.random.default_rng(0)
    xs = [*positions, *(np.add(positions[:-1], positions[1:]) / 2),  # ties between two
          *rng.uniform(min(positions) - 2, max(positions) + 2, 200), math.inf, -math.inf,
          math.nan]
    for x in xs:
        with np.errstate(invalid="ignore"):
            expected = int(np.argmin(np.abs(np.array(positions) - x)))
        assert _nearest(positions, float(x)) == expected, x


def test_a_deferred_trial_is_evaluated_unless_a_complete_feasible_trial_before_dominates_it():
    from ecotune.tabular._replay import Deferred, _history

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values, constraints in [([0.5, 4.0], {}), ([0.9, 1.0], {"trial_energy_j": 2.0}),
                                ([0.45, 4.5], {}), ([0.45, 3.0], {}), ([0.5, 4.0], {})]:
        study.add_trial(optuna.trial.create_trial(values=values, constraints=constraints,
                                                  user_attrs={"energy_j": values[1]}))
    # Trials 2-4 trained to the end and left their accounting to the replay: 2 is
    # dominated by trial 0; 3 only by the infeasible trial 1, which does not count;
    # 4 equals trial 0, and an equal point dominates nothing.
    deferred = {n: Deferred(tuple(study.trials[n].values), study.trials[n].values[1], 0.25)
                for n in (2, 3, 4)}
    energy, *_ = _history(study, [0.0, 10.0], 4.2, [True, False], deferred, "front")
    assert energy.tolist() == [4.0, 1.0, 4.5, 3.25, 4.25]
    assert _history(study, [0.0, 10.0], 4.2, [True, False], deferred, "all")[0].tolist() == [
        4.0, 1.0, 4.75, 3.25, 4.25]
    assert _history(study, [0.0, 10.0], 4.2, [True, False], deferred, "none")[0].tolist() == [
        4.0, 1.0, 4.5, 3.0, 4.0]
