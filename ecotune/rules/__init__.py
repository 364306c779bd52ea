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
    "TRIAL_BUDGET_KEY": "ecotune.rules._budgets",
    "TRIAL_BUDGET_STOP": "ecotune.rules._budgets",
    "Prediction": "ecotune.rules._early_stopping",
    "predict_final": "ecotune.rules._early_stopping",
    "EnergyAwareStopper": "ecotune.rules._early_stopping",
    "study_front": "ecotune.rules._early_stopping",
    "EARLY_STOP": "ecotune.rules._early_stopping",
    "FREEZE_ENERGY_MULTIPLIER": "ecotune.rules._early_stopping",
    "LOW_PRECISION_ENERGY_MULTIPLIER": "ecotune.rules._early_stopping",
    "STOPPER_ATTR": "ecotune.rules._early_stopping",
    "SH_ATTR": "ecotune.rules._successive_halving",
    "SH_STOP": "ecotune.rules._successive_halving",
    "SuccessiveHalving": "ecotune.rules._successive_halving",
    "continues": "ecotune.rules._successive_halving",
    "crowding_distance": "ecotune.rules._successive_halving",
    "nondominated_ranks": "ecotune.rules._successive_halving",
    "rung_epochs": "ecotune.rules._successive_halving",
    "store_rules": "ecotune.rules._stored",
    "stored_rules": "ecotune.rules._stored",
}

__all__ = [
    "EARLY_STOP",
    "EnergyAwareStopper",
    "FREEZE_ENERGY_MULTIPLIER",
    "LOW_PRECISION_ENERGY_MULTIPLIER",
    "Prediction",
    "SH_ATTR",
    "SH_STOP",
    "STOPPER_ATTR",
    "StudyEnergyBudget",
    "SuccessiveHalving",
    "TRIAL_BUDGET_KEY",
    "TRIAL_BUDGET_STOP",
    "TrialEnergyBudget",
    "continues",
    "crowding_distance",
    "nondominated_ranks",
    "predict_final",
    "rung_epochs",
    "search_energy_j",
    "store_rules",
    "stored_rules",
    "study_energy_j",
    "study_front",
]

if TYPE_CHECKING:
    from ecotune.rules._budgets import (
        TRIAL_BUDGET_KEY,
        TRIAL_BUDGET_STOP,
        StudyEnergyBudget,
        TrialEnergyBudget,
        search_energy_j,
        study_energy_j,
    )
    from ecotune.rules._early_stopping import (
        EARLY_STOP,
        FREEZE_ENERGY_MULTIPLIER,
        LOW_PRECISION_ENERGY_MULTIPLIER,
        STOPPER_ATTR,
        EnergyAwareStopper,
        Prediction,
        predict_final,
        study_front,
    )
    from ecotune.rules._stored import store_rules, stored_rules
    from ecotune.rules._successive_halving import (
        SH_ATTR,
        SH_STOP,
        SuccessiveHalving,
        continues,
        crowding_distance,
        nondominated_ranks,
        rung_epochs,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
