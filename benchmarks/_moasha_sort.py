"""syne-tune 0.16's MOASHA sort, the same answers in less time: for _moasha_driver.py.

A MOASHA rung decision calls ``nondominated_sort`` (syne-tune's
``multiobjective/non_dominated_priority.py``) over every point recorded at that rung, so
a run of N trials costs O(N^2) Python-level iterations per decision: on a 300-configuration
table (about 800 trials per run) 58 of a run's 64 s went there. :func:`nondominated_sort`
returns exactly what syne-tune's does, for the case MOASHA uses (two objectives,
``dim`` given, every item, flattened), and hands any other case to syne-tune's own:

- fronts by one pass over the points in (x0, x1) order, each point to the first front that
  holds no point dominating it (a binary search: a point of front f+1 is dominated by one
  of front f, so "dominated by front f" holds for a prefix of the fronts), which is the
  peeling of syne-tune's repeated ``pareto_efficient``;
- copies of a point once (below);
- within a front, syne-tune's greedy epsilon-net (``compute_epsilon_net``: the seed is
  the first point with the least ``dim`` value, then the point farthest from those chosen,
  the first such on ties, in index order), with each candidate's least distance kept up to
  date instead of recomputed; the distances are the same ``numpy.linalg.norm`` of the
  same differences, so every comparison is the same;
- syne-tune's ``pareto_front[pareto_order]``, ``pareto_order`` being the net's ranks, kept
  as it is.

:func:`check` compares the two on random inputs (ties and duplicate points included); the
driver runs it at start and refuses to go on if they differ.
"""

from __future__ import annotations

import math

import numpy as np


def _fronts_2d(X: np.ndarray) -> list[np.ndarray]:
    """Indices of each non-dominated front of ``X`` (minimised), in index order."""
    order = np.lexsort((X[:, 1], X[:, 0]))
    front_of = np.empty(len(X), dtype=np.int64)
    best: list[tuple[float, float]] = []  # per front: least x1, least x0 among those
    for i, x0, x1 in zip(order.tolist(), X[order, 0].tolist(), X[order, 1].tolist()):
        lo, hi = 0, len(best)
        while lo < hi:  # the first front with no point that dominates (x0, x1)
            mid = (lo + hi) // 2
            b1, b0 = best[mid]
            if b1 < x1 or (b1 == x1 and b0 < x0):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(best):
            best.append((x1, x0))
        elif x1 < best[lo][0]:  # points come in x0 order: an equal x1 keeps the first x0
            best[lo] = (x1, x0)
        front_of[i] = lo
    grouped = np.argsort(front_of, kind="stable")
    bounds = np.cumsum(np.bincount(front_of))
    return np.split(grouped, bounds[:-1])


def _greedy_order(points: list[list[float]], dim: int) -> list[int]:
    """syne-tune's greedy epsilon-net order of ``points`` (indices), in plain floats:
    ``numpy.linalg.norm`` of a 2-vector is ``sqrt(d0*d0 + d1*d1)``, the same operations,
    so the same doubles, and every tie goes to the first index, as numpy's argmin and
    argmax do."""
    column = [p[dim] for p in points]
    first = column.index(min(column))
    order = [first]
    remaining = [i for i in range(len(points)) if i != first]
    a0, a1 = points[first]
    least = [math.sqrt((points[i][0] - a0) * (points[i][0] - a0)
                       + (points[i][1] - a1) * (points[i][1] - a1)) for i in remaining]
    while remaining:
        j = least.index(max(least))
        chosen = remaining.pop(j)
        least.pop(j)
        order.append(chosen)
        a0, a1 = points[chosen]
        for m, i in enumerate(remaining):
            d0, d1 = points[i][0] - a0, points[i][1] - a1
            d = math.sqrt(d0 * d0 + d1 * d1)
            if d < least[m]:
                least[m] = d
    return order


def _ranks(order) -> np.ndarray:
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    return ranks


def nondominated_sort(X: np.ndarray, dim: int | None = None, max_items: int | None = None,
                      flatten: bool = True):
    """syne-tune's ``nondominated_sort``, same signature and answers.

    A rung holds many copies of a point (trials of one configuration, or of configurations
    that share a curve's prefix). Copies share a front, and a copy's distance to a chosen
    copy is 0: syne-tune's greedy takes the first copy of each distinct point when that
    point's turn comes (its copies' distances are equal; the first index wins) and the
    other copies last, in index order, once every distance left is 0. So fronts and
    greedy run over the distinct points, each at its first copy's index, and the other
    copies follow. That needs a distance of 0 to mean equal points, so no difference of two
    distinct values may square to 0: values within 1e-100..1e100 in size, or 0; else every
    point goes through the greedy."""
    X = np.asarray(X)
    if (X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0 or dim is None
            or max_items is not None or not flatten or not np.isfinite(X).all()):
        from syne_tune.optimizer.schedulers.multiobjective import non_dominated_priority

        return non_dominated_priority.nondominated_sort(X, dim=dim, max_items=max_items,
                                                        flatten=flatten)
    X = X + 0.0  # -0.0 as 0.0: the same dominance, the same distances
    size = np.abs(X[X != 0])
    out: list[int] = []
    if size.size and (size.min() < 1e-100 or size.max() > 1e100):
        for front in _fronts_2d(X):
            out.extend(front[_ranks(_greedy_order(X[front].tolist(), dim))].tolist())
        return out
    distinct, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    front_of = np.empty(len(distinct), dtype=np.int64)
    for f, ids in enumerate(_fronts_2d(distinct)):
        front_of[ids] = f
    point_front = front_of[inverse.reshape(-1)]
    grouped = np.argsort(point_front, kind="stable")
    bounds = np.cumsum(np.bincount(point_front))
    by_front = np.argsort(front_of, kind="stable")
    distinct_bounds = np.cumsum(np.bincount(front_of))
    for members, ids in zip(np.split(grouped, bounds[:-1]),
                            np.split(by_front, distinct_bounds[:-1])):
        if len(ids) == 1:  # copies of one point: in index order
            out.extend(members.tolist())
            continue
        ids = ids[np.argsort(first[ids])]  # the front's distinct points, by first copy
        greedy = _greedy_order(distinct[ids].tolist(), dim)
        heads = np.searchsorted(members, first[ids[greedy]])
        rest = np.ones(len(members), dtype=bool)
        rest[heads] = False
        out.extend(members[_ranks(np.concatenate([heads, np.flatnonzero(rest)]))].tolist())
    return out


def check(cases: int = 300, seed: int = 0) -> None:
    """Raise AssertionError where :func:`nondominated_sort` and syne-tune's differ on
    random point sets (continuous, on a coarse grid with ties, with duplicates)."""
    from syne_tune.optimizer.schedulers.multiobjective.non_dominated_priority import (
        nondominated_sort as shipped,
    )

    rng = np.random.default_rng(seed)
    for case in range(cases):
        n = int(rng.integers(1, 120))
        kind = case % 3
        if kind == 0:
            X = rng.random((n, 2))
        elif kind == 1:
            X = rng.integers(0, 6, (n, 2)).astype(float)
        else:
            X = rng.random((max(1, n // 3), 2))[rng.integers(0, max(1, n // 3), n)]
        X[:, 1] *= 10 ** rng.uniform(0, 4)  # energies: another scale than errors
        for dim in (0, 1):
            mine, theirs = nondominated_sort(X, dim=dim), list(shipped(X, dim=dim))
            assert mine == theirs, f"the fast sort differs on case {case} (dim {dim})"
