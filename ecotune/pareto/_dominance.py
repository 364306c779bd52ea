"""Pareto dominance: which points no other point beats (pure numpy, no Optuna)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dominated", "non_dominated", "to_costs"]


def to_costs(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """``values`` with every maximised objective negated: all objectives to minimise."""
    return np.where(np.asarray(maximize, dtype=bool), -np.asarray(values, dtype=float),
                    np.asarray(values, dtype=float))


def dominated(point: Sequence[float], points: np.ndarray | Sequence[Sequence[float]],
              maximize: Sequence[bool]) -> bool:
    """Whether some row of ``points`` dominates ``point`` (as good in every objective,
    better in one); an equal point does not.

    Example:
        >>> dominated([0.8, 6.0], [[0.9, 5.0]], [True, False]), dominated(
        ...     [0.9, 5.0], [[0.9, 5.0]], [True, False])
        (True, False)
    """
    rows = np.asarray(points, dtype=float).reshape(-1, len(maximize))
    if len(rows) == 0:
        return False
    costs, mine = to_costs(rows, maximize), to_costs(point, maximize)
    return bool(((costs <= mine).all(axis=1) & (costs < mine).any(axis=1)).any())


def non_dominated(values: np.ndarray | Sequence[Sequence[float]],
                  maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n points x m objectives) that no other row
    dominates. A row dominates another when it is at least as good in every objective
    and better in one. Duplicated points are all kept; a row with a NaN is kept and
    dominates nothing.

    O(n log n) for two objectives; for more, each point is checked against the front
    found so far in lexicographic order (a dominating point always comes first).

    Example:
        >>> non_dominated(np.array([[0.9, 10.], [0.8, 5.], [0.7, 6.]]), [True, False])
        array([ True,  True, False])
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(maximize):
        raise ValueError(f"values must be (n, {len(maximize)}); got shape {values.shape}")
    keep = np.ones(len(values), dtype=bool)
    comparable = ~np.isnan(values).any(axis=1)
    costs = to_costs(values[comparable], maximize)
    if len(costs) == 0:
        return keep
    # Lexicographic order, first objective first (np.lexsort's last key is the primary).
    order = np.lexsort(costs.T[::-1])
    ordered = costs[order]
    new_row = np.ones(len(ordered), dtype=bool)
    new_row[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    unique = ordered[new_row]
    unique_kept = _non_dominated_unique_sorted(unique)
    kept_sorted = unique_kept[np.cumsum(new_row) - 1]  # duplicates share their row's fate
    kept = np.empty(len(costs), dtype=bool)
    kept[order] = kept_sorted
    keep[comparable] = kept
    return keep


def _non_dominated_unique_sorted(costs: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of distinct, lexicographically sorted cost rows."""
    n, m = costs.shape
    if m == 1:
        return np.arange(n) == 0
    if m == 2:
        # A row is dominated iff an earlier row (x <= x') has y <= y'.
        best_before = np.full(n, np.inf)
        best_before[1:] = np.minimum.accumulate(costs[:-1, 1])
        return best_before > costs[:, 1]
    keep = np.zeros(n, dtype=bool)
    front = np.empty_like(costs)
    size = 0
    for i, row in enumerate(costs):
        # Any earlier front row no worse everywhere is distinct, hence dominates.
        if size == 0 or not (front[:size] <= row).all(axis=1).any():
            front[size] = row
            size += 1
            keep[i] = True
    return keep
