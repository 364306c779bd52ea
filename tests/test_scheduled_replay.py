"""A recorded table replayed under an outside ask/tell scheduler
(ecotune.tabular.replay_scheduler): the energy of a stopped trial, the test evaluation a
finished one pays, the budget, simulated workers, the resource knob, and agreement with
ecotune's own replay.

The peer itself (syne-tune's MOASHA) is not exercised here: it lives in the benchmark's
own environment (benchmarks/peer_moasha.py, which runs it), not in ecotune's, and the
suite runs without it. These schedulers are small rules whose decisions are known, so
that every joule can be checked by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecotune.spec import load_spec
from ecotune.tabular import (
    Method,
    ScheduledTrial,
    TableError,
    read_table,
    replay,
    replay_scheduler,
    stopped_energy_j,
)
from ecotune.tabular._record import table_spec
from ecotune.tabular._table import write_rows

#: (lr, epochs) -> per-epoch validation accuracy, cumulative energy; final energy; test
#: evaluation energy. The epochs=1 curves are prefixes of the epochs=3 ones.
CURVES = {
    (0.1, 3): ([0.5, 0.7, 0.8], [2.0, 4.0, 6.0], 6.5, 1.25),
    (0.1, 1): ([0.5], [2.0], 2.5, 1.25),
    (0.2, 3): ([0.6, 0.75, 0.9], [3.0, 6.0, 9.0], 9.75, 2.0),
    (0.2, 1): ([0.6], [3.0], 3.75, 2.0),
}


def _spec(**settings) -> dict:
    return {"study": {"name": "sched", "seed": 0},
            "training": {"test_evaluation": settings.pop("test_evaluation", "all")},
            "early_stopping": {"on_stop": settings.pop("on_stop", "prune")},
            "search_space": {
                "lr": {"type": "float", "low": 0.1, "high": 0.2, "grid": [0.1, 0.2]},
                "epochs": {"type": "int", "low": 1, "high": 3, "grid": [1, 3]}}}


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "t.csv"
    rows = []
    for (lr, epochs), (acc, energy, final, evaluation) in CURVES.items():
        for e in range(epochs):
            rows.append({"lr": lr, "epochs": epochs, "epoch": e + 1, "val_accuracy": acc[e],
                         "energy_j": energy[e], "elapsed_s": 10.0 * lr * (e + 1),
                         "state": "COMPLETE", "accuracy": acc[-1], "final_energy_j": final,
                         "epochs_run": epochs, "evaluation_energy_j": evaluation})
    header = {"study": "sched", "spec": json.dumps(table_spec(load_spec(_spec())))}
    write_rows(path, ["lr", "epochs"], rows, header=header)
    return read_table(path)


class Fixed:
    """Proposes ``configs`` in order (then nothing); stops every trial after
    ``stop_after`` epochs (None: never)."""

    def __init__(self, configs, stop_after=None) -> None:
        self.configs, self.stop_after = list(configs), stop_after
        self.results: list[tuple[int, int, float, float, bool]] = []

    def suggest(self, trial_id):
        return self.configs[trial_id] if trial_id < len(self.configs) else None

    def on_result(self, trial_id, epoch, accuracy, energy_j, last):
        self.results.append((trial_id, epoch, accuracy, energy_j, last))
        return self.stop_after is None or epoch < self.stop_after


ALL = [{"lr": lr, "epochs": ep} for lr, ep in CURVES]


class Curves(Fixed):
    """:class:`Fixed` that also takes a whole curve at once (``on_curve``), with the same
    rule; ``curves`` records what it was handed."""

    def __init__(self, configs, stop_after=None) -> None:
        super().__init__(configs, stop_after)
        self.curves: list[tuple[int, list[float], list[float]]] = []

    def on_curve(self, trial_id, accuracy, energy_j):
        self.curves.append((trial_id, accuracy, energy_j))
        n = len(accuracy)
        return n if self.stop_after is None else min(self.stop_after, n)


def test_a_stopped_trial_costs_its_epochs_and_the_window_after_training(table):
    trials: list[ScheduledTrial] = []
    run = replay_scheduler(table, _spec(), Fixed(ALL, stop_after=2), label="s", seed=0,
                           n_trials=4, trials_out=trials)
    # Epochs 1-2 of a 3-epoch curve, then the 0.5 J (0.75 J) recorded after its last
    # epoch; a 1-epoch trial trains to its end and pays its test evaluation ("all").
    assert run.energy_j.tolist() == [4.0 + 0.5, 2.5 + 1.25, 6.0 + 0.75, 3.75 + 2.0]
    assert [t.stopped for t in trials] == [True, False, True, False]
    assert [t.epochs_run for t in trials] == [2, 1, 2, 1]
    assert run.states == ["PRUNED", "COMPLETE", "PRUNED", "COMPLETE"]
    assert stopped_energy_j(table.configs[("0.1", "3")], 2) == 4.5


def test_the_scheduler_sees_each_epoch_and_which_is_last(table):
    scheduler = Fixed(ALL[:2], stop_after=None)
    replay_scheduler(table, _spec(), scheduler, label="s", seed=0, n_trials=2)
    assert scheduler.results == [(0, 1, 0.5, 2.0, False), (0, 2, 0.7, 4.0, False),
                                 (0, 3, 0.8, 6.0, True), (1, 1, 0.5, 2.0, True)]


def test_a_stopped_trial_counts_on_the_front_with_on_stop_complete(table):
    pruned = replay_scheduler(table, _spec(), Fixed(ALL[:1], stop_after=1), label="p",
                              seed=0, n_trials=1)
    kept = replay_scheduler(table, _spec(on_stop="complete"), Fixed(ALL[:1], stop_after=1),
                            label="c", seed=0, n_trials=1)
    assert pruned.hypervolume_ratio.tolist() == [0.0] and pruned.values == [None]
    assert kept.states == ["COMPLETE"] and kept.values == [(0.5, 2.5)]
    assert kept.hypervolume_ratio[0] > 0


def test_every_trial_run_to_its_end_with_test_evaluation_all_costs_a_full_grid(table):
    run = replay_scheduler(table, _spec(), Fixed(ALL), label="g", seed=0, budget_j=1e9)
    assert len(run.states) == 4  # the scheduler ran out of proposals
    assert run.energy_j.sum() == pytest.approx(table.total_energy_j())
    assert run.hypervolume_ratio[-1] == pytest.approx(1.0)


def test_front_evaluates_only_a_trial_no_finished_one_dominates(table):
    trials: list[ScheduledTrial] = []
    order = [{"lr": 0.1, "epochs": 1}, {"lr": 0.2, "epochs": 1}, {"lr": 0.1, "epochs": 3}]
    replay_scheduler(table, _spec(test_evaluation="front"), Fixed(order), label="f",
                     seed=0, n_trials=3, trials_out=trials)
    # (0.5, 2.5 J) first: on the front. (0.6, 3.75 J): not dominated. (0.8, 6.5 J): not
    # dominated either. Then "none": no trial pays.
    assert [t.evaluation_energy_j for t in trials] == [1.25, 2.0, 1.25]
    worse = [{"lr": 0.2, "epochs": 3}, {"lr": 0.1, "epochs": 3}]
    trials.clear()
    replay_scheduler(table, _spec(test_evaluation="front"), Fixed(worse), label="f",
                     seed=0, n_trials=2, trials_out=trials)
    # (0.9, 9.75 J) then (0.8, 6.5 J): cheaper, so not dominated, evaluated.
    assert [t.evaluation_energy_j for t in trials] == [2.0, 1.25]
    trials.clear()
    replay_scheduler(table, _spec(test_evaluation="front"),
                     Fixed([{"lr": 0.1, "epochs": 1}, {"lr": 0.1, "epochs": 1}]),
                     label="f", seed=0, n_trials=2, trials_out=trials)
    assert [t.evaluation_energy_j for t in trials] == [1.25, 1.25]  # equal: not dominated
    trials.clear()
    replay_scheduler(table, _spec(test_evaluation="none"), Fixed(ALL), label="n", seed=0,
                     n_trials=4, trials_out=trials)
    assert [t.evaluation_energy_j for t in trials] == [0.0] * 4


def test_no_trial_starts_once_the_budget_is_spent(table):
    # 7.75 J after the first trial (6.5 + 1.25), 11.5 after the second.
    one = replay_scheduler(table, _spec(), Fixed(ALL), label="b", seed=0, budget_j=7.75)
    two = replay_scheduler(table, _spec(), Fixed(ALL), label="b", seed=0, budget_j=7.76)
    assert len(one.states) == 1 and len(two.states) == 2


def test_workers_finish_in_the_order_of_their_recorded_times(table):
    trials: list[ScheduledTrial] = []
    # Trial 0 (lr 0.2, 3 epochs: 2 s an epoch) and trial 1 (lr 0.1, 1 epoch: 1 s) start
    # together; trial 1 ends first, and trial 2 takes its worker at 1 s.
    order = [{"lr": 0.2, "epochs": 3}, {"lr": 0.1, "epochs": 1}, {"lr": 0.1, "epochs": 3}]
    run = replay_scheduler(table, _spec(), Fixed(order), label="w", seed=0, workers=2,
                           n_trials=3, trials_out=trials)
    assert [t.trial_id for t in trials] == [1, 2, 0]
    assert [t.finished_s for t in trials] == pytest.approx([1.0, 4.0, 6.0])
    assert run.energy_j.tolist() == [3.75, 7.75, 11.75]


def test_a_resource_knob_walks_the_longest_curve(table):
    trials: list[ScheduledTrial] = []
    replay_scheduler(table, _spec(), Fixed([{"lr": 0.1}, {"lr": 0.2}], stop_after=1),
                     label="r", seed=0, n_trials=2, resource="epochs", trials_out=trials)
    assert [t.key for t in trials] == [("0.1", "3"), ("0.2", "3")]
    assert [t.energy_j for t in trials] == [2.5, 3.75]  # stopped after epoch 1 of 3


def test_bad_input_is_refused(table):
    with pytest.raises(ValueError, match="budget"):
        replay_scheduler(table, _spec(), Fixed(ALL), label="x", seed=0)
    with pytest.raises(ValueError, match="workers"):
        replay_scheduler(table, _spec(), Fixed(ALL), label="x", seed=0, n_trials=1,
                         workers=0)
    with pytest.raises(ValueError, match="resource"):
        replay_scheduler(table, _spec(), Fixed(ALL), label="x", seed=0, n_trials=1,
                         resource="width")
    spec = _spec()
    spec["study"]["objectives"] = ["accuracy", "duration_s"]
    with pytest.raises(TableError, match="accuracy and energy_j"):
        replay_scheduler(table, spec, Fixed(ALL), label="x", seed=0, n_trials=1)


def test_a_scheduler_that_never_stops_matches_the_replay_of_the_same_trials(table):
    """Grid search replayed by ecotune, and the same configurations in the same order
    handed over by a scheduler: the same energy per trial and hypervolume history."""
    spec = load_spec(_spec(test_evaluation="front"))
    theirs = replay(table, spec, [Method("grid", "grid")], n_trials=4)["grid"][0]
    by_values = {(c[0][-1], c[2]): {"lr": lr, "epochs": ep}
                 for (lr, ep), c in CURVES.items()}
    order = [by_values[v] for v in theirs.values]
    mine = replay_scheduler(table, spec, Fixed(order), label="grid", seed=0, n_trials=4)
    assert np.array_equal(mine.energy_j, theirs.energy_j)
    assert np.array_equal(mine.hypervolume_ratio, theirs.hypervolume_ratio)
    assert mine.values == theirs.values


@pytest.mark.parametrize(("stop_after", "on_stop"), [(None, "prune"), (1, "prune"),
                                                     (2, "complete"), (3, "prune")])
def test_whole_curves_give_the_runs_that_epoch_by_epoch_results_give(table, stop_after,
                                                                      on_stop):
    order = ALL + ALL[::-1]
    spec = _spec(on_stop=on_stop, test_evaluation="front")
    epochs, curves = [], []
    by_epoch = replay_scheduler(table, spec, Fixed(order, stop_after), label="e", seed=0,
                                n_trials=8, trials_out=epochs)
    scheduler = Curves(order, stop_after)
    whole = replay_scheduler(table, spec, scheduler, label="e", seed=0, n_trials=8,
                             trials_out=curves)
    assert scheduler.results == []  # every decision came through on_curve
    assert scheduler.curves[0] == (0, [0.5, 0.7, 0.8], [2.0, 4.0, 6.0])
    assert curves == epochs
    assert np.array_equal(whole.energy_j, by_epoch.energy_j)
    assert np.array_equal(whole.hypervolume_ratio, by_epoch.hypervolume_ratio)
    assert whole.states == by_epoch.states and whole.values == by_epoch.values


def test_whole_curves_only_with_one_worker_and_a_sane_answer(table):
    scheduler = Curves(ALL, stop_after=1)
    replay_scheduler(table, _spec(), scheduler, label="w", seed=0, workers=2, n_trials=4)
    assert scheduler.curves == [] and len(scheduler.results) == 4  # interleaved: by epoch

    class Bad(Curves):
        def on_curve(self, trial_id, accuracy, energy_j):
            return len(accuracy) + 1

    with pytest.raises(ValueError, match="on_curve of trial 0 returned 4 epochs"):
        replay_scheduler(table, _spec(), Bad(ALL), label="b", seed=0, n_trials=1)


def test_a_run_stopped_at_a_level_is_the_full_runs_prefix_up_to_reaching_it(table):
    spec = _spec(on_stop="complete", test_evaluation="front")
    order = ALL + ALL[::-1]
    full = replay_scheduler(table, spec, Fixed(order, stop_after=2), label="s", seed=0,
                            n_trials=8)
    ratios = full.hypervolume_ratio.tolist()
    level = ratios[2]  # reached first at the third trial (it raises the ratio)
    assert ratios[1] < level < 1.0
    stopped = replay_scheduler(table, spec, Fixed(order, stop_after=2), label="s", seed=0,
                               n_trials=8, stop_at_ratio=level)
    assert stopped.hypervolume_ratio.tolist() == ratios[:3]
    assert np.array_equal(stopped.energy_j, full.energy_j[:3])
    assert stopped.values == full.values[:3]
    never = replay_scheduler(table, spec, Fixed(order, stop_after=2), label="s", seed=0,
                             n_trials=8, stop_at_ratio=1.0)  # never reached: the full run
    assert never.hypervolume_ratio.tolist() == ratios
    with pytest.raises(ValueError, match="stop_at_ratio"):
        replay_scheduler(table, spec, Fixed(order), label="s", seed=0, n_trials=8,
                         stop_at_ratio=1.5)
