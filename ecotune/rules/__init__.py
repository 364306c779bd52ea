"""The rules a study's trials obey: energy budgets, energy-aware early stopping,
successive halving, and the study attribute that stores them for every worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "TrialEnergyBudget": "ecotune.rules._budgets",
    "StudyEnergyBudget": "ecotune.rules._budgets",
    "study_energy_j": "ecotune.rules._budgets",
    "search_energy_j": "ecotune.rules._budgets",
    "Prediction": "ecotune.rules._early_stopping",
    "predict_final": "ecotune.rules._early_stopping",
    "EnergyAwareStopper": "ecotune.rules._early_stopping",
    "study_front": "ecotune.rules._early_stopping",
    "study_dominates": "ecotune.rules._early_stopping",
    "FREEZE_ENERGY_MULTIPLIER": "ecotune.rules._early_stopping",
    "LOW_PRECISION_ENERGY_MULTIPLIER": "ecotune.rules._early_stopping",
    "SuccessiveHalving": "ecotune.rules._successive_halving",
    "bracket_of": "ecotune.rules._successive_halving",
    "continues": "ecotune.rules._successive_halving",
    "crowding_distance": "ecotune.rules._successive_halving",
    "nondominated_ranks": "ecotune.rules._successive_halving",
    "rung_epochs": "ecotune.rules._successive_halving",
    "store_rules": "ecotune.rules._stored",
    "stored_rules": "ecotune.rules._stored",
    "study_metric_names": "ecotune.rules._stored",
}

__all__ = [
    "EnergyAwareStopper",
    "FREEZE_ENERGY_MULTIPLIER",
    "LOW_PRECISION_ENERGY_MULTIPLIER",
    "Prediction",
    "StudyEnergyBudget",
    "SuccessiveHalving",
    "TrialEnergyBudget",
    "bracket_of",
    "continues",
    "crowding_distance",
    "nondominated_ranks",
    "predict_final",
    "rung_epochs",
    "search_energy_j",
    "store_rules",
    "stored_rules",
    "study_dominates",
    "study_energy_j",
    "study_front",
    "study_metric_names",
]

if TYPE_CHECKING:
    from ecotune.rules._budgets import (
        StudyEnergyBudget,
        TrialEnergyBudget,
        search_energy_j,
        study_energy_j,
    )
    from ecotune.rules._early_stopping import (
        FREEZE_ENERGY_MULTIPLIER,
        LOW_PRECISION_ENERGY_MULTIPLIER,
        EnergyAwareStopper,
        Prediction,
        predict_final,
        study_dominates,
        study_front,
    )
    from ecotune.rules._stored import store_rules, stored_rules, study_metric_names
    from ecotune.rules._successive_halving import (
        SuccessiveHalving,
        bracket_of,
        continues,
        crowding_distance,
        nondominated_ranks,
        rung_epochs,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
