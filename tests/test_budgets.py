"""Energy budgets and energy-aware early stopping, end to end on small digits studies."""

from __future__ import annotations

import optuna
import pytest

import ecotune
from ecotune.report import pareto_front, prediction_errors
from ecotune.rules._budgets import StudyEnergyBudget, TrialEnergyBudget, study_energy_j
from ecotune.rules._early_stopping import predict_final
from ecotune.spec import SpecError, load_spec
from ecotune.training import EpochRecord, StopTraining
from tests.conftest import tiny_spec


def _spec(**sections) -> dict:
    spec = tiny_spec(storage="sqlite:///b.db", n_trials=4)
    spec["energy"] = {"meter": "cputime"}
    spec["training"] = {"epochs": 4, "batch_size": 128}
    spec.update(sections)
    return spec


def test_trial_budget_stops_before_the_epoch_that_would_exceed_it() -> None:
    budget = TrialEnergyBudget(10.0, planned_epochs=4)
    budget(EpochRecord(1, 0.0, 0.5, 0.1, energy_j=3.0))  # 3 + 3 <= 10: go on
    budget(EpochRecord(2, 0.0, 0.5, 0.2, energy_j=6.0))  # 6 + 3 <= 10: go on
    with pytest.raises(StopTraining, match="trial_energy_budget"):
        budget(EpochRecord(3, 0.0, 0.5, 0.3, energy_j=9.0))  # 9 + 3 > 10
    assert budget.constraint_j(9.0, epochs_run=3) == pytest.approx(12.0 - 10.0)
    within = TrialEnergyBudget(100.0, planned_epochs=2)
    assert within.constraint_j(9.0, epochs_run=2) == pytest.approx(-91.0)


def test_budgets_must_be_positive() -> None:
    with pytest.raises(SpecError, match="budgets.trial_energy_j: Input should be greater"):
        load_spec(_spec(budgets={"trial_energy_j": -1.0}))
    with pytest.raises(SpecError, match="budgets.study_energy_j"):
        load_spec(_spec(budgets={"study_energy_j": 0}))
    with pytest.raises(ValueError, match="must be > 0"):
        StudyEnergyBudget(-5.0)


@pytest.fixture
def step_meters(monkeypatch: pytest.MonkeyPatch):
    """Trials measured by step meters (tests/test_own_loop.py), not the clock: call with
    each trial's joules per epoch, in trial order."""
    from ecotune.search import _measure, _objective
    from tests.test_own_loop import StepMeter

    def use(*steps_j: float) -> None:
        steps = iter(steps_j)
        monkeypatch.setattr(_measure, "get_meter", lambda *a, **k: StepMeter(next(steps)))
        monkeypatch.setattr(_objective, "get_meter", lambda *a, **k: StepMeter())

    return use


def test_over_budget_trials_are_infeasible_and_never_on_the_front(step_meters) -> None:
    """A 2.5 J budget for 4 epochs: trials at 1 J an epoch stop after epoch 2 (2 J spent,
    the next epoch would reach 3 J) and are infeasible by 4 - 2.5 = 1.5 J planned; trials
    at 0.5 J an epoch finish at 2 J, feasible by 0.5 J."""
    step_meters(1.0, 0.5, 1.0, 0.5)
    study = ecotune.run(_spec(budgets={"trial_energy_j": 2.5}))
    stopped = {t.number for t in study.trials if t.user_attrs["training"]["stop_reason"]
               == "trial_energy_budget"}
    assert stopped == {0, 2}
    for t in study.trials:
        training = t.user_attrs["training"]
        assert t.user_attrs["energy_j"] == pytest.approx(2.0)
        assert training["epochs_run"] == (2 if t.number in stopped else 4)
        assert t.constraints["trial_energy_j"] == pytest.approx(
            1.5 if t.number in stopped else -0.5)
    front = set(pareto_front(study)["trial"])
    assert front and not front & stopped


def test_study_budget_stops_new_trials_across_runs(step_meters) -> None:
    """4 J a trial (4 epochs of 1 J), a 10 J budget: trials 0-2 start (8 J spent before
    the third), then none; a second run starts none."""
    step_meters(*[1.0] * 50)
    spec = _spec(budgets={"study_energy_j": 10.0})
    spec["study"]["n_trials"] = 50
    study = ecotune.run(spec)
    assert len(study.trials) == 3
    assert study_energy_j(study) == pytest.approx(12.0)
    again = ecotune.run(spec)  # spent already: no new trial starts
    assert len(again.trials) == len(study.trials)


def test_inference_energy_constraint_and_objective() -> None:
    spec = _spec(budgets={"inference_energy_pj": 1.0})  # nothing fits in 1 pJ
    spec["study"]["objectives"] = ["accuracy", "inference_energy"]
    study = ecotune.run(spec)
    for t in study.trials:
        assert t.values[1] == t.user_attrs["inference"]["asic_pj"] > 1.0
        assert t.constraints["inference_energy_pj"] > 0
    assert pareto_front(study).empty


def test_predictor_prices_planned_freezing() -> None:
    curve = [EpochRecord(t, 0.0, 0.8, 0.0, energy_j=10.0 * t) for t in (1, 2)]
    plain = predict_final(curve, planned_epochs=4)
    frozen = predict_final(curve, planned_epochs=4, freeze_at_epoch=3)
    assert plain.energy_j == pytest.approx(40.0)
    assert frozen.energy_j == pytest.approx(20.0 + 2 * 10.0 * 0.77)
    assert plain.accuracy == pytest.approx(0.8)  # flat curve: no gain predicted


def _stopping_study(on_stop: str) -> optuna.Study:
    """A cheap, good trial first; then trials of a wide model with a tiny learning rate,
    dearer and worse, which the stopper should cut short."""
    spec = _spec(early_stopping={"enabled": True, "min_epochs": 2, "margin": 0.0,
                                 "on_stop": on_stop})
    spec["training"] = {"epochs": 6, "batch_size": 128}
    spec["study"]["n_trials"] = 1

    def fixed(value: float) -> dict:  # a float range may change between runs
        return {"type": "float", "low": value, "high": value}

    spec["search_space"] = {"width": fixed(0.25), "lr": fixed(3e-2)}
    ecotune.run(spec)
    spec["study"]["n_trials"] = 2
    spec["search_space"] = {"width": fixed(4.0), "lr": fixed(1e-4)}
    return ecotune.run(spec)


def test_energy_aware_early_stopping_prunes_dominated_trials() -> None:
    study = _stopping_study("prune")
    good, *bad = study.trials
    assert good.state == optuna.trial.TrialState.COMPLETE
    for t in bad:
        assert t.state == optuna.trial.TrialState.PRUNED
        record = t.user_attrs["early_stopping"]
        # Energy is measured, so noisy: stopped soon after min_epochs, not at a fixed epoch.
        assert 2 <= record["stopped_at_epoch"] < 6
        assert len(record["predictions"]) == record["stopped_at_epoch"]
        assert t.user_attrs["energy_j"] > 0  # its energy still counts
    # The good trial ran to the end: its predictions' errors can be measured.
    errors = prediction_errors(study)
    assert set(errors["trial"]) == {good.number}
    assert list(errors["epoch"]) == [1, 2, 3, 4, 5]
    assert (errors["energy_j_rel_error"] >= 0).all()


def test_early_stopping_can_complete_instead_of_pruning() -> None:
    study = _stopping_study("complete")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    stopped = study.trials[1:]
    assert all(t.user_attrs["training"]["stop_reason"] == "energy_aware_stop"
               and t.user_attrs["training"]["epochs_run"] < 6 for t in stopped)


def test_early_stopping_needs_accuracy_and_energy_objectives() -> None:
    spec = _spec(early_stopping={"enabled": True})
    spec["study"]["objectives"] = ["accuracy", "duration_s"]
    with pytest.raises(SpecError, match="early_stopping needs the objectives"):
        load_spec(spec)


def test_the_trial_budget_at_its_boundary() -> None:
    """1 J an epoch, a 4 J budget, 5 planned: after epoch 3 the next would land exactly on
    4 J, which is within the budget; after epoch 4 the next would pass it."""
    budget = TrialEnergyBudget(4.0, planned_epochs=5)
    for epoch in (1, 2, 3):
        budget(EpochRecord(epoch, None, 0.5, float(epoch), energy_j=float(epoch)))
    with pytest.raises(StopTraining):
        budget(EpochRecord(4, None, 0.5, 4.0, energy_j=4.0))
    assert budget.constraint_j(4.0, epochs_run=4) == 1.0  # 5 planned x 1 J - 4 J


def test_the_study_budget_is_spent_at_exactly_its_sum() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for joules in (3.0, 5.0):
        study.add_trial(optuna.trial.create_trial(values=[0.5, joules],
                                                  user_attrs={"energy_j": joules}))
    assert StudyEnergyBudget(8.0).exhausted(study)  # 3 + 5 J reach 8 J
    assert not StudyEnergyBudget(8.5).exhausted(study)
