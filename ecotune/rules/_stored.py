"""The rules a study's trials obey (energy-aware early stopping, energy budgets), stored
in the study itself so that every worker, and every ``ecotune.measure()`` on the study,
applies the same ones.

Both the rules and the study's metric names are read from storage once per study object
and kept (each trial's measurement window needs them: two storage reads a trial
otherwise). :func:`store_rules` on a study object updates what that object keeps; a
worker process reads the rules at its first trial, so rules stored by a later run apply
to the workers started after it.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from ecotune.names import STUDY_ATTR_RULES
from ecotune.spec import TrialRules

if TYPE_CHECKING:
    import optuna

__all__ = ["store_rules", "stored_rules", "study_metric_names"]

#: Per study object: its rules and its metric names, as last read or stored.
_RULES: weakref.WeakKeyDictionary[optuna.Study, TrialRules] = weakref.WeakKeyDictionary()
_METRIC_NAMES: weakref.WeakKeyDictionary[optuna.Study, list[str]] = (
    weakref.WeakKeyDictionary())
_LOCK = threading.Lock()  # trials in threads share a study object


def store_rules(study: optuna.Study, rules: TrialRules) -> None:
    """Store ``rules`` in ``study`` (a study user attribute), if they differ from what
    it holds."""
    data = rules.model_dump(mode="json")
    if study.user_attrs.get(STUDY_ATTR_RULES) != data:
        study.set_user_attr(STUDY_ATTR_RULES, data)
    with _LOCK:
        _RULES[study] = TrialRules.model_validate(data)


def stored_rules(study: optuna.Study) -> TrialRules:
    """The rules stored in ``study``; none (no early stopping, no budget) if it has none,
    as a plain Optuna study does. Read once per study object (see the module's
    docstring)."""
    with _LOCK:
        rules = _RULES.get(study)
    if rules is None:
        data = study.user_attrs.get(STUDY_ATTR_RULES)
        rules = TrialRules() if data is None else TrialRules.model_validate(data)
        with _LOCK:
            rules = _RULES.setdefault(study, rules)
    return rules


def study_metric_names(study: optuna.Study) -> list[str] | None:
    """``study.metric_names``, read once per study object once they are set (ecotune never
    renames a study's objectives: :func:`ecotune.create_study` refuses other ones); None,
    read again next time, while they are unset.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study_metric_names(study) is None
        True
        >>> study.set_metric_names(["accuracy", "energy_j"])
        >>> study_metric_names(study)
        ['accuracy', 'energy_j']
    """
    with _LOCK:
        names = _METRIC_NAMES.get(study)
    if names is None:
        names = study.metric_names
        if names is not None:
            with _LOCK:
                _METRIC_NAMES[study] = names
    return None if names is None else list(names)
