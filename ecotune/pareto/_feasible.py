"""Which trials count: Optuna's feasibility rule, in one place for the whole package."""

from __future__ import annotations

import optuna

__all__ = ["is_feasible"]


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether every constraint of ``trial`` is zero or less.

    The rule of ``study.best_trials`` in Optuna 5. ``FrozenTrial.constraints`` reads the
    constraints ``trial.set_constraint`` records (and the legacy ``constraints`` list), so
    a trial without any constraint is feasible.

    Example:
        >>> import optuna
        >>> over = optuna.trial.create_trial(values=[0.9, 5.0], constraints={"budget": 2.0})
        >>> within = optuna.trial.create_trial(values=[0.8, 1.0], constraints={"budget": 0.0})
        >>> is_feasible(over), is_feasible(within), is_feasible(
        ...     optuna.trial.create_trial(values=[0.5, 1.0]))
        (False, True, True)
    """
    return all(value <= 0.0 for value in trial.constraints.values())
