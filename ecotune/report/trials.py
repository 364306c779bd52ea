"""Per-trial data for the report (no drawing here): learning curves and parameter effects.

Reads only an ``optuna.Study``. Learning curves come from the user attribute ``training``
that ecotune's built-in trainer records (``{"learning_curve": [{"epoch", "val_accuracy",
"energy_j", ...}], "stop_reason": ...}``); a study without it simply has no curves.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd

from ecotune.names import ATTR_TRAINING, STOP_COMPLETED
from ecotune.pareto import objective_names
from ecotune.report.front import trials_frame

__all__ = ["learning_curves", "ParameterEffects", "parameter_effects"]

_CURVE_COLUMNS = ["trial", "state", "stop_reason", "early_stopped", "epoch", "val_accuracy",
                  "energy_j"]


def learning_curves(study: optuna.Study) -> pd.DataFrame:
    """One row per trial and epoch: validation accuracy and cumulative energy (NaN where
    not recorded).

    A trial is marked ``early_stopped`` when it was pruned or its ``stop_reason`` is not
    ``"completed"``. Failed trials are included (their curve ends where they failed);
    running ones are not.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> curve = [{"epoch": 1, "val_accuracy": 0.5, "energy_j": 2.0},
        ...          {"epoch": 2, "val_accuracy": 0.7}]
        >>> study.add_trial(optuna.trial.create_trial(values=[0.7, 3.0], user_attrs={
        ...     "training": {"learning_curve": curve, "stop_reason": "completed"}}))
        >>> learning_curves(study)[["epoch", "val_accuracy", "energy_j"]].values.tolist()
        [[1.0, 0.5, 2.0], [2.0, 0.7, nan]]
    """
    # Column by column: at 100,000 trials a dict per epoch would hold most of a report's
    # peak memory (800,000 of them).
    columns: dict[str, list] = {name: [] for name in _CURVE_COLUMNS}
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.FAIL)
    for t in study.get_trials(deepcopy=False, states=states):
        training = t.user_attrs.get(ATTR_TRAINING)
        if not isinstance(training, dict):
            continue
        stop_reason = training.get("stop_reason")
        early = t.state == optuna.trial.TrialState.PRUNED or (
            stop_reason is not None and stop_reason != STOP_COMPLETED)
        curve = training.get("learning_curve") or []
        for name, value in (("trial", t.number), ("state", t.state.name),
                            ("stop_reason", stop_reason), ("early_stopped", bool(early))):
            columns[name].extend([value] * len(curve))
        for record in curve:
            energy = record.get("energy_j")
            columns["epoch"].append(record.get("epoch"))
            columns["val_accuracy"].append(record.get("val_accuracy"))
            columns["energy_j"].append(np.nan if energy is None else float(energy))
    frame = pd.DataFrame(columns, columns=_CURVE_COLUMNS)
    return frame.sort_values(["trial", "epoch"]).reset_index(drop=True)


class ParameterEffects(NamedTuple):
    """What the parameter-effect plots show: each objective against each parameter."""

    frame: pd.DataFrame  # trials_frame(study): objectives, params_*, on_front
    objectives: list[str]
    params: list[str]  # parameter names, without the params_ prefix
    log_params: list[str]  # parameters sampled on a log scale (drawn on a log axis)


def parameter_effects(study: optuna.Study) -> ParameterEffects:
    """The complete, feasible trials with every objective and parameter, and which
    parameters were sampled on a log scale.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "energy_j"])
        >>> lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9, 5.0], params={"lr": 1e-3},
        ...                                           distributions={"lr": lr}))
        >>> effects = parameter_effects(study)
        >>> effects.objectives, effects.params, effects.log_params
        (['accuracy', 'energy_j'], ['lr'], ['lr'])
    """
    frame = trials_frame(study)
    names = objective_names(study)
    params = sorted(c.removeprefix("params_") for c in frame.columns
                    if c.startswith("params_"))
    log_params = set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        for name, dist in t.distributions.items():
            if getattr(dist, "log", False):
                log_params.add(name)
    return ParameterEffects(frame, names, params, sorted(log_params & set(params)))
