"""The hypervolume after each trial of a search, by the feasibility rule (pure numpy).

One definition for a study's report, ``compare`` and the replay of a recorded table: the
front of the complete, feasible trials so far (:func:`~ecotune.pareto.is_feasible`),
kept up to date trial by trial (:class:`~ecotune.pareto.ParetoFront`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import optuna

from ecotune.pareto._feasible import is_feasible
from ecotune.pareto._hypervolume import ParetoFront

__all__ = ["hypervolume_history"]


def hypervolume_history(trials: Iterable[optuna.trial.FrozenTrial], maximize: Sequence[bool],
                        reference: Sequence[float] | np.ndarray) -> np.ndarray:
    """After each of ``trials`` (in the order given), the hypervolume against
    ``reference`` of the front of the complete, feasible trials so far.

    Other trials (failed, pruned, running, infeasible: a constraint above 0) leave the
    hypervolume as it was. O(n log n) in all for two objectives.

    Example:
        >>> import optuna
        >>> trials = [optuna.trial.create_trial(values=[0.5, 4.0]),
        ...           optuna.trial.create_trial(values=[0.9, 1.0], constraints={"budget": 1.0}),
        ...           optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL),
        ...           optuna.trial.create_trial(values=[0.8, 6.0])]
        >>> hypervolume_history(trials, [True, False], reference=[0.0, 10.0]).tolist()
        [3.0, 3.0, 3.0, 4.2]
    """
    front = ParetoFront(maximize, reference)
    volumes, volume = [], 0.0
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t) \
                and front.add(t.values):
            volume = front.hypervolume
        volumes.append(volume)
    return np.asarray(volumes, dtype=float)
