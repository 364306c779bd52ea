"""Successive halving: the rung rule as a pure function, and the live trainer stopping
exactly the trials the rule says, from the rung points it stored."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import ATTR_SUCCESSIVE_HALVING, STOP_SUCCESSIVE_HALVING
from ecotune.rules import SuccessiveHalving, bracket_of
from ecotune.rules._successive_halving import (
    continues,
    crowding_distance,
    epsilon_net_ahead,
    nondominated_ranks,
    rung_epochs,
)
from ecotune.search import prepare, run
from ecotune.spec import SpecError, load_rules


def test_rungs_multiply_by_the_reduction_factor():
    assert rung_epochs(3, 2, 12) == [3, 6, 12]
    assert rung_epochs(1, 3, 27) == [1, 3, 9, 27]
    with pytest.raises(ValueError, match="reduction_factor >= 2"):
        rung_epochs(1, 1, 10)


def test_ranks_peel_fronts_off_in_turn():
    points = np.array([[0.9, 3.0], [0.8, 1.0], [0.7, 2.0], [0.6, 4.0], [0.9, 3.0]])
    # (0.9, 3) twice: equal points do not dominate each other.
    assert nondominated_ranks(points).tolist() == [0, 0, 1, 2, 0]


def test_crowding_gives_the_ends_infinity_and_the_middle_its_gap():
    d = crowding_distance(np.array([[0.2, 1.0], [0.5, 2.0], [0.9, 5.0]]))
    assert np.isinf(d[0]) and np.isinf(d[2])
    assert d[1] == pytest.approx((0.9 - 0.2) / 0.7 + (5.0 - 1.0) / 4.0)


@pytest.mark.parametrize("points, current, factor, expected", [
    ([[0.5, 1.0]], 0, 3, True),                          # alone: the top one continues
    ([[0.5, 1.0], [0.4, 2.0]], 1, 3, False),             # dominated, top 1 of 2
    ([[0.5, 1.0], [0.6, 2.0]], 1, 3, True),              # both on the front: a tie
    ([[0.5, 1.0], [0.6, 2.0], [0.7, 3.0], [0.8, 4.0]], 1, 2, False),  # 2 ends ahead
    ([[0.5, 1.0], [0.6, 2.0], [0.7, 3.0], [0.8, 4.0]], 3, 2, True),   # an end
    ([[0.5, 1.0], [0.4, 2.0], [0.3, 3.0], [0.2, 4.0]], 1, 2, True),   # rank 1, top 2
    ([[0.5, 1.0], [0.4, 2.0], [0.3, 3.0], [0.2, 4.0]], 2, 2, False),  # rank 2
])
def test_continues_keeps_the_top_share_by_rank_then_crowding(points, current, factor,
                                                             expected):
    assert continues(points, current, factor) is expected


FRONT = [[0.9, 8.0], [0.7, 4.0], [0.5, 2.0], [0.1, 0.0]]  # one front, most accurate first


def test_the_epsilon_net_puts_the_most_accurate_first_then_the_farthest():
    # 0.9 first; 0.1 is farthest from it (8.0 J away); then 0.7 (4.0 J from both chosen)
    # before 0.5 (2.0 J from 0.1).
    assert [epsilon_net_ahead(np.array(FRONT), i) for i in range(4)] == [0, 2, 3, 1]


def test_the_epsilon_net_keeps_exactly_the_top_share_where_crowding_keeps_both_ends():
    front = FRONT[:3]  # keep = max(1, 3 // 3) = 1
    assert [continues(front, i, 3) for i in range(3)] == [True, False, True]
    assert [continues(front, i, 3, order="epsilon_net") for i in range(3)] == \
        [True, False, False]
    # Six points, keep 2: the most accurate and the farthest from it (the cheapest).
    six = [*FRONT, [0.3, 1.0], [0.8, 6.0]]
    assert [continues(six, i, 3, order="epsilon_net") for i in range(6)] == \
        [True, False, False, True, False, False]


def test_the_epsilon_net_ranks_a_dominated_trial_behind_the_whole_front():
    rung = [*FRONT, [0.85, 9.0]]  # dominated by (0.9, 8.0): rank 1, behind 4 points
    assert not continues(rung, 4, 2, order="epsilon_net")  # keep 2
    assert continues(rung, 0, 2, order="epsilon_net")  # the front's first still goes on


def test_the_epsilon_net_lets_a_copy_share_its_place_whatever_the_row_order():
    # Three copies of the most accurate point: none is ahead of another, so each
    # continues (ties favour the trial being decided), and the answers do not depend on
    # where the rows sit.
    rung = [[0.5, 2.0], [0.9, 8.0], [0.1, 0.0], [0.9, 8.0], [0.7, 4.0], [0.9, 8.0]]
    decided = [continues(rung, i, 3, order="epsilon_net") for i in range(6)]
    assert decided == [False, True, False, True, False, True]
    order = [4, 2, 5, 0, 3, 1]
    shuffled = [rung[i] for i in order]
    assert [continues(shuffled, j, 3, order="epsilon_net") for j in range(6)] == \
        [decided[i] for i in order]


def test_a_rung_order_must_be_known_and_needs_successive_halving():
    with pytest.raises(ValueError, match="order must be one of crowding, epsilon_net"):
        continues(FRONT, 0, 3, order="random")
    assert load_rules({"early_stopping": {"method": "successive_halving",
                                          "rung_order": "epsilon_net"}}
                      ).early_stopping.rung_order == "epsilon_net"
    with pytest.raises(SpecError, match="rung_order = \"epsilon_net\" needs method"):
        load_rules({"early_stopping": {"rung_order": "epsilon_net"}})
    with pytest.raises(SpecError, match="rung_order: Input should be 'crowding' or "
                                        "'epsilon_net'"):
        load_rules({"early_stopping": {"method": "successive_halving",
                                       "rung_order": "eps"}})


def test_the_watcher_stops_by_the_order_it_was_given():
    study = optuna.create_study(directions=["maximize", "minimize"])

    def stopped(order: str) -> list[bool]:
        out = []
        for accuracy, energy_j in FRONT[:3]:
            trial = study.ask()
            watch = SuccessiveHalving(trial, planned_epochs=3, min_epochs=1,
                                      reduction_factor=3, order=order)
            try:
                watch(EpochRecord(1, None, accuracy, 1.0, energy_j=energy_j))
                out.append(False)
            except StopTraining:
                out.append(True)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out

    # Alone, then on the front beside 0.9 and then beside both: with crowding each is an
    # end of its front (infinite distance, a tie it wins), with the net each is behind 0.9.
    assert stopped("crowding") == [False, False, False]
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert stopped("epsilon_net") == [False, True, True]
    with pytest.raises(ValueError, match="order must be one of"):
        SuccessiveHalving(study.ask(), 3, 1, 3, order="nsga")


def _spec(storage: str) -> dict:
    return {
        "study": {"name": "sh", "storage": storage, "n_trials": 5, "sampler": "random",
                  "seed": 0},
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "training": {"epochs": 4, "batch_size": 128},
        "energy": {"meter": "cputime"},
        "early_stopping": {"enabled": True, "method": "successive_halving",
                           "min_epochs": 1, "reduction_factor": 2},
        "search_space": {
            "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
            "width": {"type": "categorical", "choices": [0.25, 0.5, 1.0]},
        },
    }


def test_the_live_trainer_stops_exactly_the_trials_the_rule_says(tmp_path, monkeypatch):
    """Every epoch costs exactly 1 J (a step meter), so at a rung every trial has spent
    the same energy and the rule reduces to accuracy: a trial continues iff fewer than
    max(1, n // 2) of the n trials at its rung (itself included) are strictly more
    accurate. That expectation is counted here, not asked of the rule's code."""
    from ecotune.search import _measure, _objective
    from tests.test_own_loop import StepMeter

    monkeypatch.setattr(_measure, "get_meter", lambda *args, **kwargs: StepMeter())
    monkeypatch.setattr(_objective, "get_meter", lambda *args, **kwargs: StepMeter())
    storage = f"sqlite:///{tmp_path / 'sh.db'}"
    spec, study = prepare(_spec(storage))
    # A good cheap trial first, then one certain to be behind it at the first rung
    # (a tiny learning rate), then five random ones.
    study.enqueue_trial({"lr": 3e-2, "width": 0.25})
    study.enqueue_trial({"lr": 1e-4, "width": 1.0})
    study = run(spec)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 7
    stopped = 0
    for trial in trials:
        rungs = trial.user_attrs[ATTR_SUCCESSIVE_HALVING]
        curve = trial.user_attrs["training"]["learning_curve"]
        expected_stop = None
        for epoch in (1, 2):  # rungs 1, 2, 4; no decision at the last epoch (4)
            accuracy, energy_j = rungs[str(epoch)]
            assert energy_j == float(epoch)  # the step meter's joules
            assert accuracy == curve[epoch - 1]["val_accuracy"]
            earlier = [t.user_attrs[ATTR_SUCCESSIVE_HALVING][str(epoch)][0] for t in trials
                       if t.number < trial.number
                       and str(epoch) in t.user_attrs[ATTR_SUCCESSIVE_HALVING]]
            if sum(a > accuracy for a in earlier) >= max(1, (len(earlier) + 1) // 2):
                expected_stop = epoch
                break
        if expected_stop is None:
            assert trial.state == optuna.trial.TrialState.COMPLETE, trial.number
            assert len(curve) == 4 and sorted(rungs, key=int) == ["1", "2", "4"]
        else:
            stopped += 1
            assert trial.state == optuna.trial.TrialState.PRUNED, trial.number
            assert len(curve) == expected_stop and len(rungs) == expected_stop
            assert trial.user_attrs["training"]["stop_reason"] == STOP_SUCCESSIVE_HALVING
    assert trials[1].state == optuna.trial.TrialState.PRUNED  # behind trial 0 at rung 1
    assert 1 <= stopped < len(trials)


def test_brackets_go_round_robin_and_need_successive_halving():
    assert [bracket_of(n, 3) for n in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert load_rules({"early_stopping": {"method": "successive_halving",
                                          "brackets": 3}}).early_stopping.brackets == 3
    with pytest.raises(SpecError, match="brackets = 2 needs method"):
        load_rules({"early_stopping": {"brackets": 2}})
    with pytest.raises(SpecError, match="brackets: Input should be greater"):
        load_rules({"early_stopping": {"method": "successive_halving", "brackets": 0}})


def test_a_bracket_starts_later_and_ranks_only_against_its_own_trials():
    study = optuna.create_study(directions=["maximize", "minimize"])

    def stops(accuracies: list[float]) -> int | None:
        trial = study.ask()
        watch = SuccessiveHalving(trial, planned_epochs=8, min_epochs=1, reduction_factor=2,
                                  brackets=2)
        try:
            for epoch, accuracy in enumerate(accuracies, start=1):
                watch(EpochRecord(epoch, None, accuracy, float(epoch), energy_j=float(epoch)))
        except StopTraining:
            return watch.stopped_at_epoch
        finally:
            study.tell(trial, [accuracies[-1], float(len(accuracies))])
        return None

    assert stops([0.9] * 8) is None                 # trial 0, bracket 0: rungs 1, 2, 4
    assert stops([0.1] * 8) is None                 # trial 1, bracket 1: rungs 2, 4 and alone
    assert stops([0.5] * 8) == 1                    # trial 2: behind trial 0 at rung 1
    # Trial 3, bracket 1: behind everyone at epoch 1, but its first rung is epoch 2,
    # where it is behind trial 1.
    assert stops([0.05] * 8) == 2
    assert study.trials[3].user_attrs[ATTR_SUCCESSIVE_HALVING] == {"2": [0.05, 2.0]}
    # Trial 5, bracket 1: far behind trial 0 (bracket 0) but ahead in its own bracket.
    assert stops([0.6] * 8) == 1                    # trial 4, bracket 0: behind trial 0
    assert stops([0.2] * 8) is None
    assert sorted(study.trials[5].user_attrs[ATTR_SUCCESSIVE_HALVING], key=int) == ["2", "4", "8"]
