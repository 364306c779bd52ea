"""The hypervolume after each trial of a search, by the feasibility rule, and the search
energy it took to reach a level (pure numpy).

One definition for a study's report, ``compare`` and the replay of a recorded table: the
front of the complete, feasible trials so far (:func:`~ecotune.pareto.is_feasible`),
kept up to date trial by trial (:class:`~ecotune.pareto.ParetoFront`), at once
(:func:`hypervolume_history`) or as the trials come (:class:`HypervolumeHistory`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import optuna
from numpy.typing import ArrayLike

from ecotune.pareto._feasible import is_feasible
from ecotune.pareto._hypervolume import ParetoFront

__all__ = ["HypervolumeHistory", "hypervolume_history", "energy_to_reach", "REACH_TOLERANCE"]

#: A hypervolume within this share of its target (1e-12 absolute below 1) has reached it:
#: rounding noise, e.g. a run whose front is the reference front reaching 100 %, is no miss.
REACH_TOLERANCE = 1e-12


class HypervolumeHistory:
    """:func:`hypervolume_history` kept trial by trial: :meth:`add` each trial in order
    and it answers the hypervolume so far; :attr:`front` is the front of the complete,
    feasible trials added (for a replay's "is this trial on the front as it finishes").

    Example:
        >>> import optuna
        >>> history = HypervolumeHistory([True, False], reference=[0.0, 10.0])
        >>> history.add(optuna.trial.create_trial(values=[0.5, 4.0]))
        3.0
        >>> history.front.dominates([0.4, 5.0]), history.front.dominates([0.8, 6.0])
        (True, False)
    """

    def __init__(self, maximize: Sequence[bool],
                 reference: Sequence[float] | np.ndarray) -> None:
        self.front = ParetoFront(maximize, reference)
        self.volume = 0.0

    def add(self, trial: optuna.trial.FrozenTrial) -> float:
        """Count ``trial`` (if complete and feasible); the hypervolume after it."""
        if trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial) \
                and self.front.add(trial.values):
            self.volume = self.front.hypervolume
        return self.volume


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
    history = HypervolumeHistory(maximize, reference)
    return np.asarray([history.add(t) for t in trials], dtype=float)


def energy_to_reach(cumulative_energy_j: ArrayLike, hypervolumes: ArrayLike,
                    target: float) -> float:
    """The search energy spent when the hypervolume first reached ``target``; NaN: never.

    ``cumulative_energy_j`` and ``hypervolumes`` are per trial, in order (a
    :func:`hypervolume_history`, or its ratio to a reference hypervolume with ``target``
    a level such as 0.95). The hypervolume has reached ``target`` when it is at least
    ``target`` less :data:`REACH_TOLERANCE` times ``max(1, |target|)``. NaN, not None,
    so that the result goes into arrays and tables as it is (``numpy.nanmean``, a NaN
    cell for a run that never reached it).

    Example:
        >>> energy_to_reach([1.0, 3.0, 6.0], [0.2, 0.9, 1.0], 0.95)
        6.0
        >>> energy_to_reach([1.0, 3.0, 6.0], [0.2, 0.9, 1.0], 2.0)
        nan
    """
    volumes = np.asarray(hypervolumes, dtype=float)
    energies = np.asarray(cumulative_energy_j, dtype=float)
    if volumes.shape != energies.shape:
        raise ValueError(f"one hypervolume per energy: got {volumes.shape} and "
                         f"{energies.shape}")
    reached = np.flatnonzero(volumes >= target - REACH_TOLERANCE * max(1.0, abs(target)))
    return float(energies[reached[0]]) if len(reached) else math.nan
