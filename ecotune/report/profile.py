"""Per-layer energy profile of the front's trials, from their ``inference`` attributes.

Each trial of the built-in trainer stores each costed layer's share of its estimated
inference energy (ASIC model). These functions turn that into tables: one row per trial
and layer, and each layer type's share per trial (Yarally et al., CAIN 2023: convolutions
dominate, linear layers add little).
"""

from __future__ import annotations

import optuna
import pandas as pd

from ecotune.names import ATTR_INFERENCE
from ecotune.report.front import pareto_front

__all__ = ["layer_profile", "layer_type_profile"]


def layer_profile(study: optuna.Study, front_only: bool = True) -> pd.DataFrame:
    """Columns ``trial``, ``layer``, ``type``, ``share`` (of the trial's ASIC estimate).

    Trials without a stored profile (studies of your own objective) give no rows.
    """
    numbers = set(pareto_front(study)["trial"]) if front_only else None
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if numbers is not None and t.number not in numbers:
            continue
        inference = t.user_attrs.get(ATTR_INFERENCE)
        for entry in (inference or {}).get("profile", []):
            rows.append({"trial": t.number, **entry})
    return pd.DataFrame(rows, columns=["trial", "layer", "type", "share"])


def layer_type_profile(study: optuna.Study, front_only: bool = True) -> pd.DataFrame:
    """Each layer type's share of each trial's estimate: ``trial``, ``type``,
    ``n_layers``, ``share``; types sorted by share within a trial, largest first."""
    layers = layer_profile(study, front_only)
    if layers.empty:
        return pd.DataFrame(columns=["trial", "type", "n_layers", "share"])
    table = (layers.groupby(["trial", "type"], sort=False)
             .agg(n_layers=("layer", "size"), share=("share", "sum")).reset_index())
    return table.sort_values(["trial", "share"], ascending=[True, False], ignore_index=True)
