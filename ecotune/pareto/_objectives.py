"""What a study calls its objectives: one fallback for studies without metric names."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["objective_names"]


def objective_names(study: optuna.Study) -> list[str]:
    """The study's metric names, or ``objective_0``, ``objective_1``, ... where unset.

    Example:
        >>> import optuna
        >>> objective_names(optuna.create_study(directions=["maximize", "minimize"]))
        ['objective_0', 'objective_1']
    """
    return list(study.metric_names or [f"objective_{i}" for i in range(len(study.directions))])
