"""The test split's evaluation: a measurement window of its own (``evaluation_energy_j``,
not in the ``energy_j`` objective), only for the trials ``[training] test_evaluation``
names, never for a stopped or pruned trial; search energy counts both."""

from __future__ import annotations

import optuna
import pytest
from test_own_loop import StepMeter

import ecotune
from ecotune.report import hypervolume_history
from ecotune.rules import StudyEnergyBudget, study_energy_j
from ecotune.search import BuiltinObjective
from ecotune.spec import SpecError, load_spec


class ClosingStepMeter(StepMeter):
    """:class:`StepMeter` whose closing reading costs a step too: a training window of E
    epochs costs exactly E + 1 steps, an evaluation window (no lap) exactly 1."""

    def _stop(self):
        self._reads += 1
        return self._reading()


def _study(name: str, **rules) -> optuna.Study:
    return ecotune.create_study(name, storage=None, sampler="random", seed=0, **rules)


def _own_loop(plan: list[tuple[float, int]], meter: ClosingStepMeter, evaluated: list[int]):
    """An own loop whose trial ``n`` reports accuracy ``plan[n][0]`` for ``plan[n][1]``
    epochs, and evaluates its test split only when on the front."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        accuracy, epochs = plan[trial.number]
        with ecotune.measure(trial, epochs=epochs, meter=meter) as m:
            for epoch in range(1, epochs + 1):
                m.report(epoch, accuracy)
                if m.should_stop():
                    raise optuna.TrialPruned(m.stop_reason)
        if m.on_front():
            with m.evaluation():
                evaluated.append(trial.number)
        return m.accuracy, m.energy_j

    return objective


def test_own_loop_evaluates_only_front_trials_and_search_energy_counts_it() -> None:
    study = _study("own-front")
    evaluated: list[int] = []
    # (accuracy, epochs): energy_j = epochs + 1 J. Trial 1 is dominated by trial 0 when it
    # finishes; trial 2 is more accurate; trial 3 ties trial 0 (not dominated).
    plan = [(0.8, 2), (0.7, 3), (0.9, 4), (0.8, 2)]
    study.optimize(_own_loop(plan, ClosingStepMeter(), evaluated), n_trials=4)
    assert evaluated == [0, 2, 3]
    assert [t.values[1] for t in study.trials] == [3.0, 4.0, 5.0, 3.0]
    assert [t.user_attrs["energy_j"] for t in study.trials] == [3.0, 4.0, 5.0, 3.0]
    assert [t.user_attrs.get("evaluation_energy_j") for t in study.trials] == [
        1.0, None, 1.0, 1.0]
    # The search spent training and evaluation: 15 J + 3 J.
    assert study_energy_j(study) == 18.0
    assert StudyEnergyBudget(100.0).spent_j(study) == 18.0
    history = hypervolume_history(study)
    assert history["energy_j"].tolist() == [4.0, 4.0, 6.0, 4.0]
    assert history["cumulative_energy_j"].tolist() == [4.0, 8.0, 14.0, 18.0]


def test_the_study_energy_budget_counts_evaluation_energy() -> None:
    # 3 J of training + 1 J of evaluation per trial: 8 J after two trials, over 7.5 J (the
    # training alone, 6 J, is not), so the third trial ends at once.
    study = _study("own-budget", budgets={"study_energy_j": 7.5})
    evaluated: list[int] = []
    study.optimize(_own_loop([(0.5, 2), (0.6, 2), (0.7, 2)], ClosingStepMeter(), evaluated),
                   n_trials=3)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert "study energy budget spent (8.0 J" in study.trials[2].user_attrs["stop_reason"]
    assert evaluated == [0, 1]


def test_a_stopped_trial_is_not_on_the_front_and_the_evaluation_window_is_checked() -> None:
    study = _study("own-stopped", budgets={"trial_energy_j": 2.5})
    meter = ClosingStepMeter()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        with ecotune.measure(trial, epochs=5, meter=meter) as m:
            for epoch in range(1, 6):
                m.report(epoch, 0.9)
                if m.should_stop():
                    break
            with pytest.raises(RuntimeError, match="after the block"):
                with m.evaluation():
                    pass
        assert m.stop_reason == "trial_energy_budget" and not m.on_front()
        with m.evaluation():
            pass
        with pytest.raises(RuntimeError, match="evaluated once"):
            with m.evaluation():
                pass
        return m.accuracy, m.energy_j

    study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs["evaluation_energy_j"] == 1.0


def test_on_front_without_a_study_or_with_objectives_it_cannot_know() -> None:
    with ecotune.measure(meter=ClosingStepMeter()) as m:
        m.report(1, 0.5)
    assert m.on_front() and m.evaluation_energy_j is None
    with m.evaluation():
        pass
    assert m.evaluation_energy_j == 1.0
    study = ecotune.create_study("custom", storage=None,
                                 objectives={"accuracy": "maximize", "loss": "minimize"})
    study.add_trial(optuna.trial.create_trial(values=[1.0, 0.0]))
    trial = study.ask()
    with ecotune.measure(trial, meter=ClosingStepMeter()) as m:
        m.report(1, 0.1)
    assert m.on_front()  # "loss" is not a figure the window knows: evaluate


def _builtin_spec(test_evaluation: str) -> dict:
    return {
        "study": {"name": f"builtin-{test_evaluation}", "sampler": "random", "seed": 0},
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "training": {"epochs": 1, "batch_size": 128, "test_evaluation": test_evaluation},
        "search_space": {"lr": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True},
                         "epochs": {"type": "int", "low": 1, "high": 3}},
    }


def _builtin_study(test_evaluation: str, **rules) -> optuna.Study:
    spec = load_spec(_builtin_spec(test_evaluation))
    study = _study(spec.study.name, **rules)
    # A good model in 1 epoch (2 J), then a poor one in 2 (3 J): dominated when it ends.
    study.enqueue_trial({"lr": 0.03, "epochs": 1})
    study.enqueue_trial({"lr": 1e-5, "epochs": 2})
    study.optimize(BuiltinObjective(spec, meter=ClosingStepMeter()), n_trials=2)
    return study


@pytest.mark.parametrize(("setting", "tested"), [("front", [True, False]),
                                                 ("all", [True, True]),
                                                 ("none", [False, False])])
def test_builtin_trainer_evaluates_the_trials_the_setting_names(setting, tested) -> None:
    study = _builtin_study(setting)
    assert study.trials[0].values[0] > study.trials[1].values[0]
    assert [t.user_attrs["energy_j"] for t in study.trials] == [2.0, 3.0]
    assert [t.values[1] for t in study.trials] == [2.0, 3.0]
    for trial, expected in zip(study.trials, tested):
        attrs = trial.user_attrs
        assert ("test_accuracy" in attrs) is expected
        assert attrs.get("evaluation_energy_j") == (1.0 if expected else None)
        if expected:
            assert 0 < attrs["test_accuracy"] <= 1 and 0 < attrs["activation_density"] <= 1
    assert study_energy_j(study) == 5.0 + sum(tested)


def test_builtin_trainer_never_evaluates_a_stopped_trial() -> None:
    # 3 planned epochs of 1 J, budget 2.5 J: stopped after epoch 2 (2 + 1 > 2.5).
    spec = load_spec(_builtin_spec("all"))
    study = _study("builtin-stopped", budgets={"trial_energy_j": 2.5})
    study.enqueue_trial({"lr": 0.03, "epochs": 3})
    study.optimize(BuiltinObjective(spec, meter=ClosingStepMeter()), n_trials=1)
    trial = study.trials[0]
    assert trial.user_attrs["training"]["stop_reason"] == "trial_energy_budget"
    assert "test_accuracy" not in trial.user_attrs
    assert "evaluation_energy_j" not in trial.user_attrs


def test_test_evaluation_is_validated() -> None:
    with pytest.raises(SpecError, match="test_evaluation"):
        load_spec(_builtin_spec("sometimes"))
    assert load_spec({"study": {"name": "d"}}).training.test_evaluation == "front"
