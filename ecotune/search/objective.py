"""The built-in trainer as an Optuna objective: sample knobs, train in a meter window,
return the study's objectives and record everything else as trial user attributes."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from ecotune.data import load_data
from ecotune.search.budgets import TRIAL_BUDGET_KEY, TrialEnergyBudget
from ecotune.search.early_stopping import EARLY_STOP, STOPPER_ATTR, EnergyAwareStopper
from ecotune.search.inference import INFERENCE_ATTR, inference_record
from ecotune.search.measure import measure
from ecotune.spec import CategoricalParam, FloatParam, IntParam, StudySpec
from ecotune.training import EpochRecord, TrainConfig, TrainResult, train

__all__ = ["BuiltinObjective", "suggest_knobs", "record_result", "FAIL_REASON_ATTR",
           "TRAINING_ATTR"]

FAIL_REASON_ATTR = "fail_reason"
INFERENCE_BUDGET_KEY = "inference_energy_pj"
#: User attribute holding the training summary and learning curve of a trial.
TRAINING_ATTR = "training"


def suggest_knobs(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Sample every knob of ``spec.search_space`` on ``trial``."""
    knobs: dict[str, Any] = {}
    for name, param in spec.search_space.items():
        if isinstance(param, CategoricalParam):
            knobs[name] = trial.suggest_categorical(name, list(param.choices))
        elif isinstance(param, IntParam):
            knobs[name] = trial.suggest_int(name, param.low, param.high, step=param.step,
                                            log=param.log)
        elif isinstance(param, FloatParam):
            knobs[name] = trial.suggest_float(name, param.low, param.high, step=param.step,
                                              log=param.log)
    return knobs


def train_config(spec: StudySpec, knobs: dict[str, Any]) -> TrainConfig:
    """The spec's training settings with the sampled ``knobs`` applied."""
    model, training = spec._with_knobs(knobs)
    return TrainConfig(model=model.name, width=model.width, **training.model_dump())


class BuiltinObjective:
    """Objective for ``study.optimize`` that trains the spec's model on the spec's data.

    Every trial trains from the same seed (``study.seed``, default 0), so trials differ by
    their knobs, not by their initial weights or batch order.
    """

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            # Optuna records the trial as failed; say why where a user will see it.
            trial.set_user_attr(FAIL_REASON_ATTR, f"{type(err).__name__}: {err}")
            raise

    def _run(self, trial: optuna.Trial) -> tuple[float, ...]:
        spec = self.spec
        config = train_config(spec, suggest_knobs(trial, spec))
        data = load_data(spec.data.name, **spec.data.loader_options())
        budget = (TrialEnergyBudget(spec.budgets.trial_energy_j, config.epochs)
                  if spec.budgets.trial_energy_j is not None else None)
        stopper = (EnergyAwareStopper(trial.study, config.epochs, spec.early_stopping.margin,
                                      spec.early_stopping.min_epochs, config.freeze_at_epoch,
                                      config.low_precision_at_epoch)
                   if spec.early_stopping.enabled else None)
        watchers = [w for w in (budget, stopper) if w is not None]

        def on_epoch(record: EpochRecord) -> None:
            for watch in watchers:
                watch(record)  # may raise StopTraining

        with measure(trial, meter=spec.energy.meter, country=spec.energy.country,
                     pue=spec.energy.pue) as m:
            result = train(data, config, seed=spec.study.seed or 0, on_epoch=on_epoch,
                           energy_so_far_j=m.energy_so_far_j)
        record_result(trial, result)
        inference = inference_record(result, data)
        trial.set_user_attr(INFERENCE_ATTR, inference)
        if spec.budgets.inference_energy_pj is not None:
            trial.set_constraint(INFERENCE_BUDGET_KEY,
                                 inference["asic_pj"] - spec.budgets.inference_energy_pj)
        if budget is not None:
            trial.set_constraint(TRIAL_BUDGET_KEY,
                                 budget.constraint_j(m.energy_j, result.epochs_run))
        if stopper is not None:
            trial.set_user_attr(STOPPER_ATTR, stopper.record())
            if result.stop_reason == EARLY_STOP and spec.early_stopping.on_stop == "prune":
                raise optuna.TrialPruned(
                    f"predicted final point dominated by the front at epoch "
                    f"{stopper.stopped_at_epoch}")
        values = {
            "accuracy": result.val_accuracy,
            "energy_j": m.energy_j,
            "duration_s": m.duration_s,
            "co2_g": m.co2_g,
            "inference_energy": inference["asic_pj"],
        }
        return tuple(float(values[name]) for name in spec.study.objectives)


def record_result(trial: optuna.Trial, result: TrainResult) -> None:
    """Store what training produced, beside the objectives, as user attributes.

    Two attributes: ``test_accuracy`` (shown on the front) and ``training``, a summary with
    the learning curve. Each attribute is one storage transaction (about 3 ms on SQLite),
    so the details travel together rather than one write each.
    """
    trial.set_user_attr("test_accuracy", result.test_accuracy)
    trial.set_user_attr(TRAINING_ATTR, {
        "val_accuracy": result.val_accuracy,
        "activation_density": result.activation_density,
        "n_params": result.n_params,
        "macs": result.macs,
        "budget_energy_ratio": result.budget_energy_ratio,
        "epochs_run": result.epochs_run,
        "stop_reason": result.stop_reason,
        "learning_curve": [dataclasses.asdict(r) for r in result.curve],
    })
