"""The rules a study's trials obey (energy-aware early stopping, energy budgets), stored
in the study itself so that every worker, and every ``ecotune.measure()`` on the study,
applies the same ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune.names import STUDY_ATTR_RULES
from ecotune.spec import TrialRules

if TYPE_CHECKING:
    import optuna

__all__ = ["store_rules", "stored_rules"]


def store_rules(study: optuna.Study, rules: TrialRules) -> None:
    """Store ``rules`` in ``study`` (a study user attribute), if they differ from what
    it holds."""
    data = rules.model_dump(mode="json")
    if study.user_attrs.get(STUDY_ATTR_RULES) != data:
        study.set_user_attr(STUDY_ATTR_RULES, data)


def stored_rules(study: optuna.Study) -> TrialRules:
    """The rules stored in ``study``; none (no early stopping, no budget) if it has none,
    as a plain Optuna study does."""
    data = study.user_attrs.get(STUDY_ATTR_RULES)
    return TrialRules() if data is None else TrialRules.model_validate(data)
