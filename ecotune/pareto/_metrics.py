"""Metrics that separate searches: the levels of the reference hypervolume whose search
energy is reported, the log hypervolume difference, and ratios of search energy between
methods (pure numpy).

One definition for ``compare`` (live runs, :mod:`ecotune.report.compare`) and the replay
of a recorded table (:mod:`ecotune.tabular`).

- **Levels** (:data:`LEVELS`): 90/95/99 % of the reference hypervolume are reached by
  almost any search on a small table; 99 % and 99.5 % are the last points of the front,
  which a good search finds cheaply.
- **Log hypervolume difference** (:func:`log_hv_difference`): ``log10(HV_ref - HV)``,
  the yardstick of multi-objective HPO benchmarks (HPOBench, syne-tune), here of the
  hypervolume *relative* to the reference one, ``log10(1 - HV / HV_ref)``, so that it has
  no unit and two tables read on one scale (the absolute one differs from it by the
  constant ``log10(HV_ref)``). It is 0 before the first trial, -2 at 99 %, and it is
  floored at :data:`LOG_HV_DIFFERENCE_FLOOR`: a run that found the reference front itself
  has a difference of 0 (or rounding noise), whose log would be -inf.
- **Ratios of search energy** (:func:`energy_ratio`): mean search energy of a method to
  reach a level over that of a baseline (random search, the field's baseline, or grid
  search), with a 95 % bootstrap interval. A run that never reached the level is censored
  at its total search energy: it would have needed at least that. Censored baseline runs
  make the ratio an upper bound (``"<="``), censored runs of the method a lower bound
  (``">="``); with both, there is no ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["BASELINES", "LEVELS", "LOG_HV_DIFFERENCE_FLOOR", "EnergyRatio", "baseline_ratios",
           "energy_ratio", "level_tag", "log_hv_difference"]

#: Fractions of the reference hypervolume whose search energy is reported.
LEVELS = (0.90, 0.95, 0.99, 0.995)
#: The methods others are compared with: random search (the field's baseline), and grid.
BASELINES = ("random", "grid")
#: The floor of :func:`log_hv_difference`: within 0.01 % of the reference hypervolume
#: counts as the reference front.
LOG_HV_DIFFERENCE_FLOOR = -4.0
#: Bootstrap resamples of :func:`energy_ratio`'s interval.
BOOTSTRAP = 4000


def level_tag(level: float) -> str:
    """A level as a percentage, for column names and labels.

    Example:
        >>> [level_tag(v) for v in LEVELS]
        ['90', '95', '99', '99.5']
    """
    return f"{round(level * 100, 6):g}"


def log_hv_difference(hypervolume_ratios: ArrayLike) -> np.ndarray:
    """``log10(1 - HV / HV_ref)`` of each hypervolume ratio, floored at
    :data:`LOG_HV_DIFFERENCE_FLOOR` (lower is better).

    Example:
        >>> log_hv_difference([0.0, 0.9, 0.99, 1.0]).round(6).tolist()
        [0.0, -1.0, -2.0, -4.0]
    """
    gap = 1.0 - np.asarray(hypervolume_ratios, dtype=float)
    floor = 10.0 ** LOG_HV_DIFFERENCE_FLOOR
    return np.log10(np.maximum(gap, floor))


class EnergyRatio(NamedTuple):
    """A method's mean search energy to a level over a baseline's, with its 95 % bootstrap
    interval. ``bound``: ``"="`` (every run of both reached the level), ``"<="`` (some
    baseline runs did not: an upper bound), ``">="`` (some runs of the method did not: a
    lower bound), ``""`` (both: no ratio; value NaN)."""

    value: float
    low: float
    high: float
    bound: str

    def text(self, digits: str = ".2f") -> str:
        """``"0.41 (0.35-0.48)"``, ``"<= 0.41 (...)"``, or ``"n/a"``."""
        if not self.bound:
            return "n/a"
        prefix = "" if self.bound == "=" else f"{self.bound} "
        return f"{prefix}{self.value:{digits}} ({self.low:{digits}}-{self.high:{digits}})"


def _censored(energies: ArrayLike, totals: ArrayLike) -> tuple[np.ndarray, bool]:
    e = np.asarray(energies, dtype=float)
    t = np.asarray(totals, dtype=float)
    if e.shape != t.shape or e.ndim != 1 or len(e) == 0:
        raise ValueError(f"one total per run, at least one run: got {e.shape} and {t.shape}")
    missing = np.isnan(e)
    return np.where(missing, t, e), bool(missing.any())


def energy_ratio(energies: ArrayLike, totals: ArrayLike, baseline_energies: ArrayLike,
                 baseline_totals: ArrayLike, seed: int = 0) -> EnergyRatio:
    """Mean ``energies`` over mean ``baseline_energies`` (per run, the search energy to a
    level, NaN where the run never reached it; ``totals``: each run's total search energy,
    the censoring value), with a 95 % percentile bootstrap interval (both sides resampled
    independently: different methods' runs are not paired).

    Example:
        >>> energy_ratio([1.0, 1.0], [5.0, 5.0], [2.0, 2.0], [9.0, 9.0])
        EnergyRatio(value=0.5, low=0.5, high=0.5, bound='=')
        >>> energy_ratio([1.0, 1.0], [5.0, 5.0], [2.0, float("nan")], [9.0, 9.0]).bound
        '<='
    """
    a, a_censored = _censored(energies, totals)
    b, b_censored = _censored(baseline_energies, baseline_totals)
    if (a_censored and b_censored) or b.mean() <= 0:
        return EnergyRatio(math.nan, math.nan, math.nan, "")
    bound = "<=" if b_censored else ">=" if a_censored else "="
    rng = np.random.default_rng(seed)
    draws_a = a[rng.integers(0, len(a), (BOOTSTRAP, len(a)))].mean(axis=1)
    draws_b = b[rng.integers(0, len(b), (BOOTSTRAP, len(b)))].mean(axis=1)
    low, high = np.percentile(draws_a / draws_b, [2.5, 97.5])
    return EnergyRatio(float(a.mean() / b.mean()), float(low), float(high), bound)


def baseline_ratios(label: str, reach: Mapping[str, Mapping[float, ArrayLike]],
                    totals: Mapping[str, ArrayLike], baselines: Sequence[str] = BASELINES,
                    levels: Sequence[float] = LEVELS) -> dict[str, float | str]:
    """The columns ``energy_to_<level>_vs_<baseline>`` (with ``_low``, ``_high``,
    ``_bound``) of method ``label``: :func:`energy_ratio` against each baseline that ran
    (a key of ``reach``), at each level. ``reach[m][level]``: method ``m``'s search energy
    to ``level`` per run (NaN: never); ``totals[m]``: its runs' total search energy.

    Example:
        >>> reach = {"a": {0.9: [2.0, 2.0]}, "random": {0.9: [4.0, 4.0]}}
        >>> totals = {"a": [5.0, 5.0], "random": [5.0, 5.0]}
        >>> baseline_ratios("a", reach, totals, levels=[0.9])["energy_to_90_vs_random"]
        0.5
    """
    row: dict[str, float | str] = {}
    for base in baselines:
        if base not in reach:
            continue
        for level in levels:
            ratio = (EnergyRatio(1.0, 1.0, 1.0, "=") if label == base else
                     energy_ratio(reach[label][level], totals[label], reach[base][level],
                                  totals[base]))
            key = f"energy_to_{level_tag(level)}_vs_{base}"
            row[key], row[f"{key}_low"], row[f"{key}_high"], row[f"{key}_bound"] = ratio
    return row
