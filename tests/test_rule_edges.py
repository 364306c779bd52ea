"""The rules that decide a trial's fate, at their edges, on exact numbers: a step meter
or hand-made epoch records, never wall-clock energy."""

from __future__ import annotations

import math
import warnings

import optuna
import pytest

import ecotune
from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import ATTR_SUCCESSIVE_HALVING
from ecotune.rules._early_stopping import EnergyAwareStopper, predict_final
from ecotune.rules._successive_halving import SuccessiveHalving, continues
from tests.test_own_loop import StepMeter


def _study(*points: tuple[float, float]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    for point in points:
        study.add_trial(optuna.trial.create_trial(values=list(point)))
    return study


def _record(epoch: int, accuracy: float, energy_j: float) -> EpochRecord:
    return EpochRecord(epoch, None, accuracy, float(epoch), energy_j=energy_j)


# --- energy-aware early stopping --------------------------------------------------------
# One epoch at accuracy 0.5 and 1 J, 10 planned: predicted (0.5, 10 J). With margin 0.25
# a front trial beats it with accuracy >= 0.75 and energy <= 7.5 J (all exact in binary).

@pytest.mark.parametrize(("front", "stops"), [
    ((0.75, 7.5), True),           # on the boundary: beaten (>=, <=)
    ((0.76, 7.4), True),           # just inside
    ((0.75 - 1e-9, 7.5), False),   # just outside by accuracy
    ((0.75, 7.5 + 1e-9), False),   # just outside by energy
    ((0.99, 10.0), False),         # better accuracy, no energy saved by the margin
])
def test_the_stopping_margin_at_its_boundary(front, stops) -> None:
    stopper = EnergyAwareStopper(_study(front), planned_epochs=10, margin=0.25, min_epochs=1)
    if stops:
        with pytest.raises(StopTraining, match="energy_aware"):
            stopper(_record(1, 0.5, 1.0))
        assert stopper.stopped_at_epoch == 1
    else:
        stopper(_record(1, 0.5, 1.0))
        assert stopper.stopped_at_epoch is None
    assert stopper.predictions[0].accuracy == 0.5
    assert stopper.predictions[0].energy_j == 10.0


def test_no_decision_before_min_epochs_nor_at_the_last_epoch() -> None:
    front = (0.99, 0.1)  # beats everything
    stopper = EnergyAwareStopper(_study(front), planned_epochs=4, margin=0.0, min_epochs=3)
    for epoch in (1, 2):
        stopper(_record(epoch, 0.5, float(epoch)))  # predicted, not decided
    assert len(stopper.predictions) == 2
    with pytest.raises(StopTraining):
        stopper(_record(3, 0.5, 3.0))
    last = EnergyAwareStopper(_study(front), planned_epochs=2, margin=0.0, min_epochs=1)
    with pytest.raises(StopTraining):
        last(_record(1, 0.5, 1.0))
    at_end = EnergyAwareStopper(_study(front), planned_epochs=2, margin=0.0, min_epochs=1)
    at_end(_record(2, 0.5, 2.0))  # the planned last epoch: nothing left to save
    assert at_end.stopped_at_epoch is None and at_end.predictions == []


def test_runtime_mode_multipliers_price_the_remaining_epochs() -> None:
    """1 J per full epoch; frozen epochs cost 0.77 of one, low-precision 0.93, both
    0.77 x 0.93 = 0.7161."""
    curve = [_record(1, 0.5, 1.0), _record(2, 0.5, 2.0)]
    assert predict_final(curve, 10).energy_j == pytest.approx(10.0)
    assert predict_final(curve, 10, freeze_at_epoch=3).energy_j == pytest.approx(
        2.0 + 8 * 0.77)
    assert predict_final(curve, 10, low_precision_at_epoch=9).energy_j == pytest.approx(
        8.0 + 2 * 0.93)
    assert predict_final(curve, 6, freeze_at_epoch=3, low_precision_at_epoch=5
                         ).energy_j == pytest.approx(2.0 + 2 * 0.77 + 2 * 0.7161)
    # Epochs already run in a cheaper mode: the spent joules are divided by the weights
    # of the epochs run (1 + 1 + 0.77 + 0.77 = 3.54 J is 1 J per full epoch).
    past = [_record(1, 0.5, 1.0), _record(2, 0.5, 2.0), _record(3, 0.5, 2.77),
            _record(4, 0.5, 3.54)]
    assert predict_final(past, 6, freeze_at_epoch=3).energy_j == pytest.approx(3.54 + 1.54)


def test_the_predicted_accuracy_is_clipped_to_the_best_seen_and_to_one() -> None:
    # Falling: a fit would predict below 0.8; the best seen is kept.
    falling = [_record(1, 0.8, 1.0), _record(2, 0.6, 2.0)]
    assert predict_final(falling, 10).accuracy == 0.8
    # Steep: a - b / t through (1, 0.5), (2, 0.99) is a = 1.48, b = 0.98: 1.382 at 10.
    steep = [_record(1, 0.5, 1.0), _record(2, 0.99, 2.0)]
    assert predict_final(steep, 10).accuracy == 1.0
    assert predict_final(steep, 2).accuracy == pytest.approx(0.99)
    # Within the bounds the fit itself: 1.48 - 0.98 / 4 = 1.235 -> still 1; at 3 epochs
    # of a gentler curve (0.5, 0.6): a = 0.7, b = 0.2, so 0.7 - 0.2 / 4 = 0.65.
    gentle = [_record(1, 0.5, 1.0), _record(2, 0.6, 2.0)]
    assert predict_final(gentle, 4).accuracy == pytest.approx(0.65)


# --- successive halving -----------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_equal_points_at_a_rung_are_ties_that_favour_the_trial_decided(n) -> None:
    """Crowding over equal points has zero span: whichever row is decided, nobody is
    ahead of it."""
    points = [[0.5, 1.0]] * n
    assert [continues(points, i, 2) for i in range(n)] == [True] * n


def test_an_equal_twin_is_not_ahead_of_the_trial_decided() -> None:
    """P twice, R and Q on one front: P and Q are its ends (infinite crowding), R is
    in the middle (0.4 / 0.4 + 2 / 2 = 2). Each P ties with its twin, whichever row it is;
    R has three ahead of it."""
    points = [[0.5, 1.0], [0.5, 1.0], [0.9, 3.0], [0.7, 2.0]]
    assert [continues(points, i, 2) for i in range(4)] == [True, True, True, False]
    assert [continues(points[::-1], i, 2) for i in range(4)] == [False, True, True, True]


def test_too_few_trials_at_a_rung_keep_only_the_top_one() -> None:
    # Fewer than reduction_factor (3) at the rung: keep max(1, n // 3) = 1.
    assert continues([[0.9, 1.0], [0.5, 2.0]], 1, 3) is False  # dominated: stops
    assert continues([[0.5, 2.0], [0.9, 1.0]], 1, 3) is True   # the top one continues
    assert continues([[0.9, 1.0]], 0, 3) is True                # alone
    # At exactly reduction_factor trials, still one kept; at twice, two.
    rung = [[0.9, 1.0], [0.8, 2.0], [0.7, 3.0], [0.6, 4.0], [0.5, 5.0], [0.4, 6.0]]
    assert [continues(rung[:3], i, 3) for i in range(3)] == [True, False, False]
    # Between the two (5 // 3 = 1): the share is rounded down, still one.
    assert [continues(rung[:5], i, 3) for i in range(5)] == [True] + [False] * 4
    assert [continues(rung, i, 3) for i in range(6)] == [True, True, False, False, False,
                                                         False]


def test_within_one_front_exactly_the_top_share_by_crowding_continues() -> None:
    """Six points on one front, evenly spaced: the two ends (infinite crowding) are the
    top 6 // 3 = 2 and continue; each interior point has exactly those two ahead of it,
    as many as are kept, so it stops (the equal interior points do not count as ahead)."""
    front = [[0.1 * k, float(k)] for k in range(1, 7)]
    assert [continues(front, i, 3) for i in range(6)] == [True, False, False, False,
                                                          False, True]


def test_interleaved_workers_compare_with_every_trial_at_the_rung() -> None:
    """Trial 0 reaches rung 1 after trial 1 (another worker) did, with a worse point:
    it is compared with trial 1 and stops, although trial 1's number is higher."""
    study = _study()
    first, second = study.ask(), study.ask()
    watch_second = SuccessiveHalving(second, planned_epochs=4, min_epochs=1,
                                     reduction_factor=2)
    watch_second(_record(1, 0.9, 1.0))
    assert second.user_attrs[ATTR_SUCCESSIVE_HALVING] == {"1": [0.9, 1.0]}
    watch_first = SuccessiveHalving(first, planned_epochs=4, min_epochs=1,
                                    reduction_factor=2)
    with pytest.raises(StopTraining, match="successive_halving"):
        watch_first(_record(1, 0.8, 2.0))
    assert watch_first.stopped_at_epoch == 1
    # No decision at the planned last epoch, even when behind.
    third = study.ask()
    last = SuccessiveHalving(third, planned_epochs=1, min_epochs=1, reduction_factor=2)
    last(_record(1, 0.1, 9.0))
    assert last.stopped_at_epoch is None and "1" in third.user_attrs[ATTR_SUCCESSIVE_HALVING]


# --- the own-loop window ------------------------------------------------------------------

def test_report_after_the_block_is_an_error() -> None:
    with ecotune.measure(meter=StepMeter(), epochs=2) as m:
        m.report(1, 0.5)
    with pytest.raises(RuntimeError, match="after the `with measure"):
        m.report(2, 0.6)
    assert len(m.curve) == 1


@pytest.mark.parametrize("epochs", [(1, 1), (2, 1)])
def test_epochs_must_increase(epochs) -> None:
    with ecotune.measure(meter=StepMeter(), epochs=3) as m:
        m.report(epochs[0], 0.5)
        with pytest.raises(ValueError, match="epochs must increase"):
            m.report(epochs[1], 0.6)
    assert [r.epoch for r in m.curve] == [epochs[0]]


@pytest.mark.parametrize("accuracy", [math.nan, math.inf, -math.inf])
def test_a_non_finite_accuracy_is_an_error(accuracy) -> None:
    with ecotune.measure(meter=StepMeter(), epochs=2) as m:
        with pytest.raises(ValueError, match="not finite"):
            m.report(1, accuracy)
        m.report(1, 0.5)  # the epoch can still be reported
    assert m.accuracy == 0.5


def test_rules_that_need_the_planned_epochs_say_so() -> None:
    study = ecotune.create_study("noepochs", storage=None, early_stopping={"enabled": True})
    trial = study.ask()
    with pytest.raises(ValueError, match=r"measure\(trial, epochs=N\)"):
        with ecotune.measure(trial, meter=StepMeter()) as m:
            m.report(1, 0.5)
    other = ecotune.create_study("plain", storage=None)
    with ecotune.measure(other.ask(), meter=StepMeter()) as m:
        m.report(1, 0.5)  # no rule needs them: fine without
    assert m.accuracy == 0.5


def test_the_swapped_objectives_warning_comes_once_and_never_for_trial_0() -> None:
    study = ecotune.create_study("swapped-once", storage=None, sampler="random", seed=0)

    def swapped(trial: optuna.Trial) -> tuple[float, float]:
        with ecotune.measure(trial, meter=StepMeter(step_j=2.0), epochs=1) as m:
            m.report(1, 0.9)
        return m.energy_j, m.accuracy  # energy first: wrong

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(swapped, n_trials=1)  # trial 0: nothing before it to compare
        assert not [w for w in caught if "returned energy_j" in str(w.message)]
        study.optimize(swapped, n_trials=3)
    swaps = [w for w in caught if "returned energy_j" in str(w.message)]
    assert len(swaps) == 1 and "trial 0 returned energy_j = 0.9" in str(swaps[0].message)
    right = ecotune.create_study("right", storage=None, sampler="random", seed=0)

    def in_order(trial: optuna.Trial) -> tuple[float, float]:
        with ecotune.measure(trial, meter=StepMeter(step_j=2.0), epochs=1) as m:
            m.report(1, 0.9)
        return m.accuracy, m.energy_j

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        right.optimize(in_order, n_trials=3)
    assert not [w for w in caught if "returned energy_j" in str(w.message)]
