"""How well the early stopper's predictions matched where trials really ended.

A trial of a study with energy-aware early stopping stores every prediction it made
(``early_stopping`` user attribute). For the trials that ran to their planned last epoch,
the prediction made after each epoch can be set against the final validation accuracy and
cumulative energy of the learning curve.
"""

from __future__ import annotations

import optuna
import pandas as pd

from ecotune.names import ATTR_EARLY_STOPPING, ATTR_TRAINING

__all__ = ["prediction_errors"]


def prediction_errors(study: optuna.Study) -> pd.DataFrame:
    """One row per prediction of a trial that completed its planned epochs.

    Columns: ``trial``, ``epoch`` (after which the prediction was made), ``predicted_*``,
    ``actual_*`` and ``*_rel_error`` (|predicted - actual| / actual) for ``accuracy`` and
    ``energy_j``. Empty when no trial ran to the end with predictions stored.
    """
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        stopper = t.user_attrs.get(ATTR_EARLY_STOPPING)
        curve = (t.user_attrs.get(ATTR_TRAINING) or {}).get("learning_curve") or []
        if not stopper or not curve or stopper.get("stopped_at_epoch") is not None:
            continue
        if curve[-1]["epoch"] != stopper["planned_epochs"] or curve[-1].get("energy_j") is None:
            continue  # stopped for another reason (budget, patience): no actual final point
        actual_accuracy, actual_energy_j = curve[-1]["val_accuracy"], curve[-1]["energy_j"]
        for p in stopper["predictions"]:
            rows.append({
                "trial": t.number, "epoch": p["epoch"],
                "predicted_accuracy": p["accuracy"], "actual_accuracy": actual_accuracy,
                "accuracy_rel_error": abs(p["accuracy"] - actual_accuracy) / actual_accuracy,
                "predicted_energy_j": p["energy_j"], "actual_energy_j": actual_energy_j,
                "energy_j_rel_error": abs(p["energy_j"] - actual_energy_j) / actual_energy_j,
            })
    columns = ["trial", "epoch", "predicted_accuracy", "actual_accuracy", "accuracy_rel_error",
               "predicted_energy_j", "actual_energy_j", "energy_j_rel_error"]
    return pd.DataFrame(rows, columns=columns)
