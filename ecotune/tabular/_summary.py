"""Replayed runs summarised over their seeds: means with 95 % confidence intervals.

Each run gives a curve of the hypervolume ratio (to the table's front) against the search
energy spent. Per method the summary holds, as mean and 95 % confidence interval over the
repeats (Student's t, one run per seed): the ratio after a given search energy, and the
search energy to first reach 90 %, 95 % and 99 % of the reference hypervolume
(:func:`ecotune.pareto.energy_to_reach`). A run that
never reaches a level within its trials has no energy for it: the summary says how many
runs reached it, and the mean and interval are over those runs only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from ecotune.pareto import energy_to_reach
from ecotune.tabular._replay import ReplayRun

__all__ = ["LEVELS", "MeanCI", "mean_ci", "ratio_at", "summarize", "mean_curves"]

#: Fractions of the reference hypervolume whose search energy is reported.
LEVELS = (0.90, 0.95, 0.99)


class MeanCI(NamedTuple):
    """Mean of ``n`` values and the half-width of its 95 % confidence interval (NaN for
    fewer than two values)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence half-width of the finite ``values``.

    Example:
        >>> m = mean_ci([1.0, 2.0, 3.0])
        >>> m.mean, round(m.half_width, 3), m.n
        (2.0, 2.484, 3)
        >>> mean_ci([5.0]).half_width
        nan
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return MeanCI(math.nan, math.nan, 0)
    if len(x) == 1:
        return MeanCI(float(x[0]), math.nan, 1)
    from scipy import stats

    t = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1))
    return MeanCI(float(x.mean()), t * float(x.std(ddof=1)) / math.sqrt(len(x)), len(x))


def ratio_at(run: ReplayRun, energy_j: float) -> float:
    """The run's hypervolume ratio once no more than ``energy_j`` of search energy is spent
    (the trials that finished within it; 0 before the first)."""
    spent = run.cumulative_energy_j
    within = np.flatnonzero(spent <= energy_j)
    return float(run.hypervolume_ratio[within[-1]]) if len(within) else 0.0


def summarize(runs: Mapping[str, Sequence[ReplayRun]], budget_j: float,
              levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """One row per method: runs, trials, search energy, final ratio, ratio at
    ``budget_j``, and per level the energy to reach it and how many runs did (means with
    confidence half-widths in ``*_ci`` columns), and the mean wall time per run.
    """
    rows = []
    for label, group in runs.items():
        row: dict[str, object] = {"method": label, "runs": len(group),
                                  "trials": float(np.mean([len(r.states) for r in group]))}
        for name, values in (
                ("search_energy_j", [r.energy_j.sum() for r in group]),
                ("final_ratio", [r.hypervolume_ratio[-1] for r in group]),
                ("ratio_at_budget", [ratio_at(r, budget_j) for r in group])):
            m = mean_ci(values)
            row[name], row[f"{name}_ci"] = m.mean, m.half_width
        for level in levels:
            m = mean_ci([energy_to_reach(r.cumulative_energy_j, r.hypervolume_ratio, level)
                         for r in group])
            key = f"energy_to_{round(level * 100)}_j"
            row[key], row[f"{key}_ci"], row[f"reached_{round(level * 100)}"] = (
                m.mean, m.half_width, m.n)
        row["wall_s_per_run"] = float(np.mean([r.wall_s for r in group]))
        rows.append(row)
    return pd.DataFrame(rows)


def mean_curves(runs: Mapping[str, Sequence[ReplayRun]], points: int = 200,
                energy_max_j: float | None = None) -> pd.DataFrame:
    """Per method, the mean hypervolume ratio against search energy on a shared energy
    grid, with the 95 % confidence band (columns ``method``, ``energy_j``, ``mean``,
    ``low``, ``high``)."""
    if energy_max_j is None:
        energy_max_j = max(float(r.cumulative_energy_j[-1]) for g in runs.values() for r in g
                           if len(r.energy_j))
    grid = np.linspace(0.0, energy_max_j, points)
    frames = []
    for label, group in runs.items():
        ratios = np.array([[ratio_at(r, e) for e in grid] for r in group])
        stats = [mean_ci(column) for column in ratios.T]
        frames.append(pd.DataFrame({
            "method": label, "energy_j": grid, "mean": [s.mean for s in stats],
            "low": [s.low if s.n > 1 else s.mean for s in stats],
            "high": [s.high if s.n > 1 else s.mean for s in stats]}))
    return pd.concat(frames, ignore_index=True)
