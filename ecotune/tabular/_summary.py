"""Replayed runs summarised over their seeds: means with 95 % confidence intervals.

Each run gives a curve of the hypervolume ratio (to the table's front) against the search
energy spent. Per method the summary holds, as mean and 95 % confidence interval over the
repeats (Student's t, one run per seed): the ratio and the log hypervolume difference
(:func:`ecotune.pareto.log_hv_difference`) at the end and after a given search energy, and
the search energy to first reach each of :data:`ecotune.pareto.LEVELS` (90, 95, 99 and
99.5 %) of the reference hypervolume (:func:`ecotune.pareto.energy_to_reach`). A run that
never reaches a level within its trials has no energy for it: the summary says how many
runs reached it, and the mean and interval are over those runs only. Beside them, per
level, the ratio of that search energy to random search's and to grid search's
(:func:`ecotune.pareto.energy_ratio`: censored at a run's total where it never reached the
level, with a bootstrap interval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from ecotune.pareto import (
    BASELINES,
    LEVELS,
    baseline_ratios,
    energy_to_reach,
    level_tag,
    log_hv_difference,
)
from ecotune.tabular._replay import ReplayRun

__all__ = ["LEVELS", "MeanCI", "mean_ci", "ratio_at", "summarize", "mean_curves"]

#: What :func:`mean_curves` can draw against search energy.
CURVE_METRICS = ("ratio", "log_hv_difference")


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


def _ratios_at(run: ReplayRun, energies_j: np.ndarray) -> np.ndarray:
    """The run's hypervolume ratio once no more than each of ``energies_j`` is spent."""
    last = np.searchsorted(run.cumulative_energy_j, energies_j, side="right") - 1
    return np.where(last >= 0, run.hypervolume_ratio[np.maximum(last, 0)], 0.0) \
        if len(run.hypervolume_ratio) else np.zeros(len(energies_j))


def ratio_at(run: ReplayRun, energy_j: float) -> float:
    """The run's hypervolume ratio once no more than ``energy_j`` of search energy is spent
    (the trials that finished within it; 0 before the first)."""
    return float(_ratios_at(run, np.array([energy_j]))[0])


def summarize(runs: Mapping[str, Sequence[ReplayRun]], budget_j: float,
              levels: Sequence[float] = LEVELS,
              baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """One row per method: runs, trials, search energy, final ratio, ratio at
    ``budget_j``, the log hypervolume difference at the end and at ``budget_j``, and per
    level the energy to reach it and how many runs did (means with confidence
    half-widths in ``*_ci`` columns), and the mean wall time per run.

    Per level and each of ``baselines`` among the methods, ``energy_to_<level>_vs_<base>``
    is the ratio of the method's mean energy to that level to the baseline's, with
    ``*_low``, ``*_high`` (95 % bootstrap interval) and ``*_bound`` (``=``, ``<=``,
    ``>=`` or empty: :class:`ecotune.pareto.EnergyRatio`).
    """
    reach = {label: {level: np.array([energy_to_reach(r.cumulative_energy_j,
                                                      r.hypervolume_ratio, level)
                                      for r in group]) for level in levels}
             for label, group in runs.items()}
    totals = {label: np.array([r.energy_j.sum() for r in group])
              for label, group in runs.items()}
    rows = []
    for label, group in runs.items():
        row: dict[str, object] = {"method": label, "runs": len(group),
                                  "trials": float(np.mean([len(r.states) for r in group]))}
        finals = [r.hypervolume_ratio[-1] if len(r.hypervolume_ratio) else 0.0
                  for r in group]
        at_budget = [ratio_at(r, budget_j) for r in group]
        for name, values in (
                ("search_energy_j", totals[label]),
                ("final_ratio", finals),
                ("ratio_at_budget", at_budget),
                ("final_log_hv_difference", log_hv_difference(finals)),
                ("log_hv_difference_at_budget", log_hv_difference(at_budget))):
            m = mean_ci(list(values))
            row[name], row[f"{name}_ci"] = m.mean, m.half_width
        for level in levels:
            m = mean_ci(list(reach[label][level]))
            tag = level_tag(level)
            key = f"energy_to_{tag}_j"
            row[key], row[f"{key}_ci"], row[f"reached_{tag}"] = m.mean, m.half_width, m.n
        row.update(baseline_ratios(label, reach, totals, baselines, levels))
        row["wall_s_per_run"] = float(np.mean([r.wall_s for r in group]))
        rows.append(row)
    return pd.DataFrame(rows)


def mean_curves(runs: Mapping[str, Sequence[ReplayRun]], points: int = 200,
                energy_max_j: float | None = None, metric: str = "ratio") -> pd.DataFrame:
    """Per method, the mean of ``metric`` against search energy on a shared energy grid,
    with the 95 % confidence band (columns ``method``, ``energy_j``, ``mean``, ``low``,
    ``high``). ``metric``: ``"ratio"`` (the hypervolume ratio) or
    ``"log_hv_difference"`` (:func:`ecotune.pareto.log_hv_difference` of it)."""
    if metric not in CURVE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {list(CURVE_METRICS)}")
    if energy_max_j is None:
        energy_max_j = max(float(r.cumulative_energy_j[-1]) for g in runs.values() for r in g
                           if len(r.energy_j))
    grid = np.linspace(0.0, energy_max_j, points)
    frames = []
    for label, group in runs.items():
        values = np.array([_ratios_at(r, grid) for r in group])
        if metric == "log_hv_difference":
            values = log_hv_difference(values)
        stats = [mean_ci(column) for column in values.T]
        frames.append(pd.DataFrame({
            "method": label, "energy_j": grid, "mean": [s.mean for s in stats],
            "low": [s.low if s.n > 1 else s.mean for s in stats],
            "high": [s.high if s.n > 1 else s.mean for s in stats]}))
    return pd.concat(frames, ignore_index=True)
