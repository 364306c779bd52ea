"""Hypervolume of a front, and its growth against the energy a search spent (pure data).

The hypervolume of a set of points is the volume of objective space that they dominate and
that dominates a reference point: one number that grows whenever the front improves
anywhere. ecotune computes it exactly: a sweep in two objectives, the HSO slicing method
(slice along the last objective, recurse on the rest) in more; fine for the fronts of a
few hundred trials that a study has.

Reference point (:func:`reference_point`): for each objective the worst value observed,
except that a maximised ``accuracy`` uses 0, its natural worst. A point as bad as the
reference in some objective adds nothing. To compare runs, take the reference over all of
them together (``ecotune compare`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
import pandas as pd

from ecotune.report.front import non_dominated

__all__ = ["hypervolume", "reference_point", "hypervolume_history", "energy_to_reach",
           "study_points"]

_DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
         optuna.trial.TrialState.FAIL)


def _to_costs(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    return np.where(np.asarray(maximize, dtype=bool), -values, values)


def _hv_min(costs: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points that all strictly dominate ``ref``."""
    if len(costs) == 0:
        return 0.0
    if costs.shape[1] == 1:
        return float(ref[0] - costs[:, 0].min())
    if costs.shape[1] == 2:
        # Sweep: sorted by the first objective, each point adds the strip it alone covers.
        order = np.lexsort((costs[:, 1], costs[:, 0]))
        volume, best_second = 0.0, ref[1]
        for x, y in costs[order]:
            if y < best_second:
                volume += (ref[0] - x) * (best_second - y)
                best_second = y
        return float(volume)
    # HSO: slabs between consecutive values of the last objective; in each slab, the
    # points below it dominate a (m-1)-dimensional region of constant size.
    order = np.argsort(costs[:, -1], kind="stable")
    costs = costs[order]
    volume = 0.0
    for i in range(len(costs)):
        upper = costs[i + 1, -1] if i + 1 < len(costs) else ref[-1]
        depth = upper - costs[i, -1]
        if depth > 0:
            volume += depth * _hv_min(costs[: i + 1, :-1], ref[:-1])
    return float(volume)


def hypervolume(values: np.ndarray | Sequence[Sequence[float]], reference: Sequence[float],
                maximize: Sequence[bool]) -> float:
    """Exact hypervolume of ``values`` (n points x m objectives) against ``reference``.

    Points that are not strictly better than the reference in every objective add nothing.

    Args:
        values: objective values, one row per point.
        reference: the reference point, one value per objective.
        maximize: per objective, whether larger is better.

    Example:
        >>> hypervolume([[0.9, 10.0], [0.5, 2.0]], reference=[0.0, 20.0],
        ...             maximize=[True, False])
        13.0
    """
    points = np.asarray(values, dtype=float).reshape(-1, len(maximize))
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(maximize),):
        raise ValueError(f"reference must have {len(maximize)} values (got {list(reference)})")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference must be finite (got {list(reference)})")
    costs, ref_costs = _to_costs(points, maximize), _to_costs(ref, maximize)
    costs = costs[np.isfinite(costs).all(axis=1) & (costs < ref_costs).all(axis=1)]
    if len(costs) == 0:
        return 0.0
    costs = costs[non_dominated(costs, [False] * costs.shape[1])]
    return _hv_min(np.unique(costs, axis=0), ref_costs)


def reference_point(values: np.ndarray | Sequence[Sequence[float]], names: Sequence[str],
                    maximize: Sequence[bool]) -> list[float]:
    """The reference point ecotune uses: per objective the worst value in ``values``,
    except 0 for a maximised ``accuracy``.

    Example:
        >>> reference_point([[0.9, 10.0], [0.5, 2.0]], ["accuracy", "energy_j"],
        ...                 [True, False])
        [0.0, 10.0]
    """
    points = np.asarray(values, dtype=float).reshape(-1, len(names))
    if len(points) == 0:
        raise ValueError("a reference point needs at least one point")
    worst = np.where(maximize, np.nanmin(points, axis=0), np.nanmax(points, axis=0))
    return [0.0 if name == "accuracy" and mx else float(w)
            for name, mx, w in zip(names, maximize, worst)]


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    constraints = trial.system_attrs.get("constraints")
    return constraints is None or all(c <= 0 for c in constraints)


def _trial_energy_j(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> float | None:
    energy = trial.user_attrs.get("energy_j")
    if energy is None and "energy_j" in names and trial.values is not None:
        energy = trial.values[list(names).index("energy_j")]
    return None if energy is None else float(energy)


def study_points(study: optuna.Study) -> np.ndarray:
    """Objective values of the complete, feasible trials (n x m)."""
    rows = [t.values for t in study.get_trials(deepcopy=False,
                                               states=(optuna.trial.TrialState.COMPLETE,))
            if _feasible(t)]
    return np.asarray(rows, dtype=float).reshape(-1, len(study.directions))


def hypervolume_history(study: optuna.Study,
                        reference: Sequence[float] | None = None) -> pd.DataFrame:
    """After each finished trial (by number): the search energy spent so far and the
    hypervolume of the front of the complete, feasible trials so far.

    Energy counts every finished trial, failed and pruned ones included, from its
    ``energy_j`` user attribute (or the ``energy_j`` objective); a trial without either
    adds 0 and shows ``energy_j`` as NaN.

    Args:
        reference: the reference point; default :func:`reference_point` of this study.

    Returns:
        Columns ``trial``, ``state``, ``energy_j``, ``cumulative_energy_j``,
        ``hypervolume``.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "energy_j"])
        >>> for acc, e in [(0.5, 4.0), (0.8, 6.0), (0.6, 1.0)]:
        ...     study.add_trial(optuna.trial.create_trial(values=[acc, e]))
        >>> hypervolume_history(study)[["cumulative_energy_j", "hypervolume"]].values.tolist()
        [[4.0, 1.0], [10.0, 1.0], [11.0, 3.0]]
    """
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    trials = sorted(study.get_trials(deepcopy=False, states=_DONE), key=lambda t: t.number)
    if reference is None:
        points = study_points(study)
        reference = reference_point(points, names, maximize) if len(points) else None
    rows, done, spent = [], [], 0.0
    for t in trials:
        energy = _trial_energy_j(t, names)
        spent += energy or 0.0
        if t.state == optuna.trial.TrialState.COMPLETE and _feasible(t):
            done.append(t.values)
        volume = hypervolume(done, reference, maximize) if done and reference else 0.0
        rows.append({"trial": t.number, "state": t.state.name,
                     "energy_j": np.nan if energy is None else energy,
                     "cumulative_energy_j": spent, "hypervolume": volume})
    return pd.DataFrame(rows, columns=["trial", "state", "energy_j", "cumulative_energy_j",
                                       "hypervolume"])


def energy_to_reach(history: pd.DataFrame, target: float) -> float | None:
    """Search energy spent when the hypervolume first reached ``target`` (None: never).

    Example:
        >>> h = pd.DataFrame({"cumulative_energy_j": [1.0, 3.0, 6.0],
        ...                   "hypervolume": [0.2, 0.9, 1.0]})
        >>> energy_to_reach(h, 0.95), energy_to_reach(h, 2.0)
        (6.0, None)
    """
    reached = history[history["hypervolume"] >= target]
    return None if reached.empty else float(reached["cumulative_energy_j"].iloc[0])
