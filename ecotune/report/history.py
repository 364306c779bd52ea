"""Hypervolume of a study's front, and its growth against the energy a search spent
(pure data; the exact computation lives in :mod:`ecotune.pareto`).

The hypervolume of a set of points is the volume of objective space that they dominate and
that dominates a reference point: one number that grows whenever the front improves
anywhere. Only complete, feasible trials count (:func:`ecotune.pareto.is_feasible`:
every constraint <= 0, Optuna's rule).

Reference point (:func:`reference_point`): for each objective the worst value of the
complete, feasible trials, moved further by a margin of 10 % of that objective's range
(of its absolute value where all trials agree; 1 where that is 0 too). A maximised
``accuracy`` uses 0 instead, its natural worst, unless some trial scored 0 or less. Every
trial that enters the front therefore adds hypervolume, the extreme ones included. Give
your own with ``reference=`` (``ecotune report --reference``); points not strictly better
than it in every objective then add nothing. To compare runs, take the reference over all
of them together (``ecotune compare`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
import pandas as pd

from ecotune.pareto import hypervolume_history as volumes_after_each_trial
from ecotune.pareto import is_feasible, objective_names
from ecotune.rules import search_energy_j

__all__ = ["reference_point", "hypervolume_history", "study_points", "REFERENCE_MARGIN",
           "HISTORY_COLUMNS"]

#: Fraction of each objective's range the default reference point lies beyond the worst.
REFERENCE_MARGIN = 0.1
#: Columns of :func:`hypervolume_history`.
HISTORY_COLUMNS = ["trial", "state", "energy_j", "cumulative_energy_j", "hypervolume"]

_DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
         optuna.trial.TrialState.FAIL)


def reference_point(values: np.ndarray | Sequence[Sequence[float]], names: Sequence[str],
                    maximize: Sequence[bool], margin: float = REFERENCE_MARGIN) -> list[float]:
    """The reference point ecotune uses: per objective the worst value in ``values``
    plus ``margin`` times the objective's range, or 0 for a maximised ``accuracy``.

    Rows with a non-finite value are left out.

    Example:
        >>> reference_point([[0.9, 10.0], [0.5, 2.0]], ["accuracy", "energy_j"],
        ...                 [True, False])
        [0.0, 10.8]
    """
    points = np.asarray(values, dtype=float).reshape(-1, len(names))
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        raise ValueError("a reference point needs at least one point with finite values")
    sign = np.where(maximize, -1.0, 1.0)  # the direction of "worse"
    worst = np.where(maximize, points.min(axis=0), points.max(axis=0))
    span = points.max(axis=0) - points.min(axis=0)
    # One point, or all equal: no range to take a share of.
    span = np.where(span > 0, span, np.where(worst != 0, np.abs(worst), 1.0))
    reference = worst + sign * margin * span
    return [min(0.0, float(r)) if name == "accuracy" and mx else float(r)
            for name, mx, r in zip(names, maximize, reference)]


def _trial_energy_j(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> float | None:
    energy = search_energy_j(trial)  # training and test evaluation
    if energy is None and "energy_j" in names and trial.values is not None:
        energy = trial.values[list(names).index("energy_j")]
    return None if energy is None else float(energy)


def study_points(study: optuna.Study) -> np.ndarray:
    """Objective values of the complete, feasible trials (n x m)."""
    rows = [t.values for t in study.get_trials(deepcopy=False,
                                               states=(optuna.trial.TrialState.COMPLETE,))
            if is_feasible(t)]
    return np.asarray(rows, dtype=float).reshape(-1, len(study.directions))


def hypervolume_history(study: optuna.Study,
                        reference: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """After each finished trial (by number): the search energy spent so far and the
    hypervolume of the front of the complete, feasible trials so far.

    Energy counts every finished trial, failed and pruned ones included, as the search
    spent it (:func:`ecotune.rules.search_energy_j`): its ``energy_j`` user attribute
    (training, or else the ``energy_j`` objective) plus its ``evaluation_energy_j`` (the
    test-split evaluation); a trial without either adds 0 and shows ``energy_j`` as NaN.
    The ``energy_j`` column is that per-trial search energy. The hypervolume is
    :func:`ecotune.pareto.hypervolume_history`'s: O(n log n) in all for two objectives.

    Args:
        reference: the reference point, a list or an array; default
            :func:`reference_point` of this study's complete, feasible trials.

    Returns:
        Columns ``trial``, ``state``, ``energy_j``, ``cumulative_energy_j``,
        ``hypervolume``.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "energy_j"])
        >>> for acc, e in [(0.5, 4.0), (0.8, 6.0), (0.6, 1.0)]:
        ...     study.add_trial(optuna.trial.create_trial(values=[acc, e]))
        >>> h = hypervolume_history(study)  # reference: accuracy 0, energy 6 + 0.5 J
        >>> h["cumulative_energy_j"].tolist(), h["hypervolume"].round(3).tolist()
        ([4.0, 10.0, 11.0], [1.25, 1.4, 3.4])
    """
    names = objective_names(study)
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    trials = sorted(study.get_trials(deepcopy=False, states=_DONE), key=lambda t: t.number)
    feasible = [t for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)]
    if reference is None and feasible:
        reference = reference_point([t.values for t in feasible], names, maximize)
    volumes = (volumes_after_each_trial(trials, maximize, reference) if reference is not None
               else np.zeros(len(trials)))
    numbers, states, energies, spent = [], [], [], []
    total_j = 0.0
    for t in trials:
        energy = _trial_energy_j(t, names)
        total_j += energy or 0.0
        numbers.append(t.number)
        states.append(t.state.name)
        energies.append(np.nan if energy is None else energy)
        spent.append(total_j)
    return pd.DataFrame(dict(zip(HISTORY_COLUMNS,
                                 (numbers, states, energies, spent, volumes.tolist()))),
                        columns=HISTORY_COLUMNS)

