"""Compare runs of the same search space under several samplers (pure data).

All runs share one reference point (:func:`~ecotune.report.history.reference_point`
of the complete, feasible trials of every run together, or one given) and one reference
hypervolume: that of the front of all runs together, the best front known. Every number
comes from the same code as a study's report (:mod:`ecotune.pareto`). A sampler is then
judged by the search energy it spent to reach 95 % of that reference hypervolume
(:func:`ecotune.pareto.energy_to_reach`), and beside it, as the replay of a recorded table
reports them (:mod:`ecotune.tabular`): the search energy to each of
:data:`ecotune.pareto.LEVELS` (90, 95, 99, 99.5 %), the final log hypervolume difference
(:func:`ecotune.pareto.log_hv_difference`) and, per level, the ratio of a sampler's search
energy to random search's and to grid search's where they ran
(:func:`ecotune.pareto.energy_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd

from ecotune.pareto import (
    LEVELS,
    baseline_ratios,
    energy_to_reach,
    hypervolume,
    level_tag,
    log_hv_difference,
    objective_names,
)
from ecotune.report.history import (
    hypervolume_history,
    reference_point,
    study_points,
)

__all__ = ["Comparison", "compare_studies", "TARGET_FRACTION"]

#: Fraction of the reference hypervolume a run must reach to count as done.
TARGET_FRACTION = 0.95


class Comparison(NamedTuple):
    """Hypervolume against search energy for each run, and a summary per sampler."""

    reference: list[float]  # the shared reference point
    reference_hypervolume: float  # of the front of all runs together
    histories: dict[str, pd.DataFrame]  # by run label ("tpe r0"): hypervolume_history
    table: pd.DataFrame  # one row per sampler


def compare_studies(runs: Mapping[str, Sequence[optuna.Study]],
                    target_fraction: float = TARGET_FRACTION,
                    reference: Sequence[float] | np.ndarray | None = None) -> Comparison:
    """Compare ``runs``: for each sampler label, its repeated studies (same objectives).

    ``reference`` overrides the shared reference point.

    The table has one row per sampler: ``runs``, ``trials`` (mean per run),
    ``search_energy_j`` (mean total), ``final_hypervolume`` (mean),
    ``hypervolume_ratio`` (mean final hypervolume / reference hypervolume),
    ``energy_to_target_j`` (mean over the runs that reached the target; NaN if none) and
    ``reached_target`` (how many runs did); ``final_log_hv_difference`` (mean of
    :func:`ecotune.pareto.log_hv_difference` of each run's final ratio); per level of
    :data:`ecotune.pareto.LEVELS` ``energy_to_<level>_j`` and ``reached_<level>``; and for
    each of :data:`ecotune.pareto.BASELINES` that ran, ``energy_to_<level>_vs_<baseline>`` with
    ``*_low``, ``*_high`` and ``*_bound`` (:class:`ecotune.pareto.EnergyRatio`).

    Example:
        >>> def study(points):
        ...     s = optuna.create_study(directions=["maximize", "minimize"])
        ...     s.set_metric_names(["accuracy", "energy_j"])
        ...     for p in points:
        ...         s.add_trial(optuna.trial.create_trial(values=p))
        ...     return s
        >>> c = compare_studies({"a": [study([[0.5, 1.0], [0.9, 4.0]])],
        ...                      "b": [study([[0.6, 2.0]])]})
        >>> c.reference, round(c.reference_hypervolume, 3)
        ([0.0, 4.3], 1.97)
        >>> c.table.round(3)[["sampler", "hypervolume_ratio", "reached_target"]].values.tolist()
        [['a', 0.898, 0], ['b', 0.701, 0]]
    """
    if not runs or not any(runs.values()):
        raise ValueError("nothing to compare: no runs given")
    first = next(s for studies in runs.values() for s in studies)
    names = objective_names(first)
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in first.directions]
    for studies in runs.values():
        for s in studies:
            if list(s.directions) != list(first.directions):
                raise ValueError(f"study {s.study_name!r} has other objectives than "
                                 f"{first.study_name!r}: cannot compare them")
    points = np.vstack([study_points(s) for studies in runs.values() for s in studies])
    if len(points) == 0:
        raise ValueError("nothing to compare: no run has a complete trial")
    reference = (reference_point(points, names, maximize) if reference is None
                 else [float(r) for r in reference])
    reference_hv = hypervolume(points, reference, maximize)
    target = target_fraction * reference_hv
    histories: dict[str, pd.DataFrame] = {}
    rows = []
    reach: dict[str, dict[float, np.ndarray]] = {}
    totals: dict[str, np.ndarray] = {}
    for label, studies in runs.items():
        finals, spent, trials, reached = [], [], [], []
        at_level: dict[float, list[float]] = {level: [] for level in LEVELS}
        for r, s in enumerate(studies):
            history = hypervolume_history(s, reference)
            histories[f"{label} r{r}"] = history
            finals.append(history["hypervolume"].iloc[-1] if len(history) else 0.0)
            spent.append(history["cumulative_energy_j"].iloc[-1] if len(history) else 0.0)
            trials.append(len(history))
            energy = (energy_to_reach(history["cumulative_energy_j"],
                                      history["hypervolume"], target)
                      if reference_hv > 0 else math.nan)
            if not math.isnan(energy):
                reached.append(energy)
            for level in LEVELS:
                at_level[level].append(
                    energy_to_reach(history["cumulative_energy_j"],
                                    history["hypervolume"] / reference_hv, level)
                    if reference_hv > 0 and len(history) else math.nan)
        reach[label] = {level: np.array(v) for level, v in at_level.items()}
        totals[label] = np.array(spent, dtype=float)
        row = {
            "sampler": label, "runs": len(studies), "trials": float(np.mean(trials)),
            "search_energy_j": float(np.mean(spent)),
            "final_hypervolume": float(np.mean(finals)),
            "hypervolume_ratio": (float(np.mean(finals)) / reference_hv if reference_hv > 0
                                  else np.nan),
            "energy_to_target_j": float(np.mean(reached)) if reached else np.nan,
            "reached_target": len(reached),
            "final_log_hv_difference": (
                float(np.mean(log_hv_difference(np.array(finals) / reference_hv)))
                if reference_hv > 0 else np.nan),
        }
        for level, values in reach[label].items():
            done = values[~np.isnan(values)]
            row[f"energy_to_{level_tag(level)}_j"] = float(done.mean()) if len(done) else np.nan
            row[f"reached_{level_tag(level)}"] = len(done)
        rows.append(row)
    for row in rows:
        row.update(baseline_ratios(row["sampler"], reach, totals))
    return Comparison(reference, reference_hv, histories, pd.DataFrame(rows))
