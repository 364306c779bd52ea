"""The interval of a repeated measurement: mean, standard deviation and a Student-t
interval over the original measurement and its repeats (no Optuna, no storage)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Interval", "t_interval", "LEVEL", "INTERVAL_RULE"]

#: The confidence level of every interval ecotune reports.
LEVEL = 0.95
#: What the interval is, in words, as stored beside it and printed.
INTERVAL_RULE = ("95 % Student-t interval of the mean over the original measurement and "
                 "its repeats (n - 1 degrees of freedom)")


class Interval(NamedTuple):
    """``n`` measurements: their ``mean``, sample standard deviation ``std`` (n - 1 in
    the denominator), and the interval ``low``..``high`` of the mean (NaN with one)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a value: the meter cannot order the means."""
        return self.low <= other.high and other.low <= self.high


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The ``level`` Student-t interval of the mean of ``values``.

    Example:
        >>> iv = t_interval([10.0, 12.0, 14.0])
        >>> iv.mean, iv.std, round(iv.low, 3), round(iv.high, 3)
        (12.0, 2.0, 7.032, 16.968)
        >>> t_interval([5.0]).std
        nan
    """
    n = len(values)
    if n == 0:
        raise ValueError("an interval needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    from scipy.stats import t  # only where an interval is computed

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)
