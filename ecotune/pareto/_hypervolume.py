"""Exact hypervolume, from scratch or kept up to date as points arrive (pure numpy).

The hypervolume of a set of points is the volume of objective space that they dominate
and that dominates a reference point. Everything here is exact (no Monte Carlo):

- two objectives: a *staircase*, the front sorted by the first objective in a Python
  list; a new point is placed by bisection (O(log n) comparisons), the points it
  dominates are removed (each point is removed at most once) and the area changes by the
  few strips next to it. :class:`ParetoFront` keeps one, so a study's hypervolume after
  every trial costs O(n log n) in all;
- three objectives: a sweep along the third objective that adds each point to a
  staircase of the first two (O(n log n) per front);
- four or more: the HSO slicing method (slice along the last objective, recurse down to
  three), recomputed by :class:`ParetoFront` only when the front changes.

Why not a library: Optuna's WFG is private (``optuna._hypervolume``) and moocore would
be a new dependency; the code here is a few dozen lines, and tests/test_pareto.py checks
it against grid counting and a from-scratch oracle.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

from ecotune.pareto._dominance import non_dominated, to_costs

__all__ = ["hypervolume", "ParetoFront"]


def _check_reference(reference: Sequence[float] | np.ndarray, n_objectives: int) -> np.ndarray:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.shape != (n_objectives,):
        raise ValueError(f"reference must have {n_objectives} values (got {list(ref)})")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference must be finite (got {list(ref)})")
    return ref


class _Staircase:
    """Non-dominated 2-D minimisation points, ``xs`` ascending (so ``ys`` descending),
    and the area they dominate inside the box below ``(rx, ry)`` (None: not tracked)."""

    def __init__(self, rx: float | None = None, ry: float | None = None) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.rx, self.ry = rx, ry
        self.area = 0.0

    def _strip(self, x: float, y: float, x_next: float) -> float:
        # The strip [x, x_next) x [y, ry), clipped to the box: what a point alone adds
        # between itself and the next point of the staircase.
        assert self.rx is not None and self.ry is not None
        return max(0.0, min(x_next, self.rx) - x) * max(0.0, self.ry - y)

    def add(self, x: float, y: float) -> bool:
        """Insert ``(x, y)``; False (and nothing changes) when a point is no worse."""
        xs, ys = self.xs, self.ys
        i = bisect_left(xs, x)
        if (i > 0 and ys[i - 1] <= y) or (i < len(xs) and xs[i] == x and ys[i] <= y):
            return False
        j = i  # xs[i:] >= x; those with y no better are dominated: a run, ys descending
        while j < len(xs) and ys[j] >= y:
            j += 1
        if self.rx is not None:
            end = xs[j] if j < len(xs) else self.rx
            old = sum(self._strip(xs[k], ys[k], xs[k + 1] if k + 1 < len(xs) else self.rx)
                      for k in range(i, j))
            new = self._strip(x, y, end)
            if i > 0:  # the point before now ends at x
                old += self._strip(xs[i - 1], ys[i - 1], xs[i] if i < len(xs) else self.rx)
                new += self._strip(xs[i - 1], ys[i - 1], x)
            self.area += new - old
        xs[i:j] = [x]
        ys[i:j] = [y]
        return True


def _volume(costs: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points that all lie strictly inside the reference box."""
    n, m = costs.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - costs[:, 0].min())
    if m == 2:
        order = np.lexsort((costs[:, 1], costs[:, 0]))
        x, y = costs[order, 0], np.minimum.accumulate(costs[order, 1])
        widths = np.append(x[1:], ref[0]) - x
        return float(np.dot(widths, ref[1] - y))
    if m == 3:
        # Sweep upwards in the third objective; between two levels, the points below
        # dominate the staircase area of their first two objectives.
        order = np.argsort(costs[:, 2], kind="stable")
        stairs = _Staircase(float(ref[0]), float(ref[1]))
        volume = 0.0
        for k, i in enumerate(order):
            stairs.add(float(costs[i, 0]), float(costs[i, 1]))
            upper = costs[order[k + 1], 2] if k + 1 < n else ref[2]
            volume += stairs.area * float(upper - costs[i, 2])
        return volume
    # HSO: slabs between consecutive values of the last objective.
    order = np.argsort(costs[:, -1], kind="stable")
    costs = costs[order]
    volume = 0.0
    for i in range(n):
        upper = costs[i + 1, -1] if i + 1 < n else ref[-1]
        depth = float(upper - costs[i, -1])
        if depth > 0:
            below = costs[: i + 1, :-1]
            volume += depth * _volume(below[non_dominated(below, [False] * (m - 1))],
                                      ref[:-1])
    return volume


def hypervolume(values: np.ndarray | Sequence[Sequence[float]],
                reference: Sequence[float] | np.ndarray, maximize: Sequence[bool]) -> float:
    """Exact hypervolume of ``values`` (n points x m objectives) against ``reference``.

    Points that are not strictly better than the reference in every objective, or that
    have a non-finite value, add nothing.

    Args:
        values: objective values, one row per point.
        reference: the reference point, one value per objective (a list or an array).
        maximize: per objective, whether larger is better.

    Example:
        >>> hypervolume([[0.9, 10.0], [0.5, 2.0]], reference=[0.0, 20.0],
        ...             maximize=[True, False])
        13.0
    """
    m = len(maximize)
    points = np.asarray(values, dtype=float).reshape(-1, m)
    ref = to_costs(_check_reference(reference, m), maximize)
    costs = to_costs(points, maximize)
    costs = costs[np.isfinite(costs).all(axis=1) & (costs < ref).all(axis=1)]
    if len(costs) == 0:
        return 0.0
    costs = np.unique(costs[non_dominated(costs, [False] * m)], axis=0)
    return _volume(costs, ref)


class ParetoFront:
    """A Pareto front that points join one at a time, and the hypervolume it dominates.

    :meth:`add` returns whether the point joined the front (no point of the front is as
    good in every objective); the points it dominates leave. With a ``reference``,
    :attr:`hypervolume` is exact after every :meth:`add`: updated in O(log n) for two
    objectives, recomputed when the front changes for more. Points with a non-finite value
    are ignored.

    Args:
        maximize: per objective, whether larger is better.
        reference: the reference point (a list or an array); None: no hypervolume.

    Example:
        >>> front = ParetoFront([True, False], reference=[0.0, 10.0])
        >>> [front.add(p) for p in ([0.5, 4.0], [0.4, 5.0], [0.8, 6.0])]
        [True, False, True]
        >>> round(front.hypervolume, 6), front.points.tolist()
        (4.2, [[0.5, 4.0], [0.8, 6.0]])
    """

    def __init__(self, maximize: Sequence[bool],
                 reference: Sequence[float] | np.ndarray | None = None) -> None:
        self.maximize = [bool(mx) for mx in maximize]
        m = len(self.maximize)
        if m == 0:
            raise ValueError("a Pareto front needs at least one objective")
        self._ref = None if reference is None else to_costs(_check_reference(reference, m),
                                                            self.maximize)
        self._stairs = (_Staircase(*map(float, self._ref)) if self._ref is not None
                        else _Staircase()) if m == 2 else None
        self._costs = np.empty((0, m))  # the front, for one or three and more objectives
        self._volume = 0.0

    def add(self, point: Sequence[float] | np.ndarray) -> bool:
        """Offer ``point`` (one value per objective); True if it joined the front."""
        if self._stairs is not None:
            costs2 = self._costs2(point)
            if costs2 is not None:  # two plain numbers: no numpy on the way (per trial in
                x, y = costs2      # a replay, where numpy's call overhead dominates)
                return math.isfinite(x) and math.isfinite(y) and self._stairs.add(x, y)
        values = np.asarray(point, dtype=float).reshape(-1)
        if values.shape != (len(self.maximize),):
            raise ValueError(f"a point needs {len(self.maximize)} values (got {list(point)})")
        costs = to_costs(values, self.maximize)
        if not np.isfinite(costs).all():
            return False
        if self._stairs is not None:
            return self._stairs.add(float(costs[0]), float(costs[1]))
        front = self._costs
        if len(front) and (front <= costs).all(axis=1).any():
            return False
        self._costs = np.vstack([front[~(costs <= front).all(axis=1)], costs])
        if self._ref is not None:
            inside = self._costs[(self._costs < self._ref).all(axis=1)]
            self._volume = _volume(inside, self._ref)
        return True

    def _costs2(self, point: Sequence[float] | np.ndarray) -> tuple[float, float] | None:
        """A two-objective point as minimisation costs, in plain floats; None where it is
        not a list or tuple of two numbers (the numpy path then reads it, or says what is
        wrong)."""
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            return None
        try:
            a, b = float(point[0]), float(point[1])
        except (TypeError, ValueError):
            return None
        return (-a if self.maximize[0] else a), (-b if self.maximize[1] else b)

    def dominates(self, point: Sequence[float] | np.ndarray) -> bool:
        """Whether a point of the front dominates ``point`` (is as good in every objective
        and better in one); an equal point does not, nor does anything dominate a point
        with a NaN. The same answer as :func:`~ecotune.pareto.dominated` against
        :attr:`points`, in O(log n) for two objectives.

        Example:
            >>> front = ParetoFront([True, False])
            >>> _ = front.add([0.9, 5.0])
            >>> front.dominates([0.8, 6.0]), front.dominates([0.9, 5.0])
            (True, False)
        """
        costs2 = self._costs2(point) if self._stairs is not None else None
        if costs2 is None:
            values = np.asarray(point, dtype=float).reshape(-1)
            if values.shape != (len(self.maximize),):
                raise ValueError(f"a point needs {len(self.maximize)} values "
                                 f"(got {list(point)})")
            costs = to_costs(values, self.maximize)
            if self._stairs is None:
                front = self._costs
                return bool(((front <= costs).all(axis=1)
                             & (front < costs).any(axis=1)).any())
            costs2 = float(costs[0]), float(costs[1])
        x, y = costs2
        if x != x or y != y:  # NaN: no comparison holds
            return False
        xs, ys = self._stairs.xs, self._stairs.ys  # xs ascending, ys descending
        i = bisect_right(xs, x)  # xs[:i] <= x, and of those ys[i - 1] is the least
        return i > 0 and (ys[i - 1] < y or (ys[i - 1] == y and xs[i - 1] < x))

    @property
    def hypervolume(self) -> float:
        """The hypervolume of the front against the reference point."""
        if self._ref is None:
            raise ValueError("this front has no reference point: pass reference= to have "
                             "its hypervolume")
        if self._stairs is not None:
            return self._stairs.area
        return self._volume

    @property
    def points(self) -> np.ndarray:
        """The points of the front (k x m, as given); sorted by the first objective from
        worst to best for two objectives."""
        if self._stairs is not None:
            costs = np.column_stack([self._stairs.xs, self._stairs.ys]).reshape(-1, 2)[::-1]
        else:
            costs = self._costs
        return to_costs(costs, self.maximize) + 0.0  # + 0.0: no negative zeros

    def __len__(self) -> int:
        return len(self._stairs.xs) if self._stairs is not None else len(self._costs)

