"""Successive halving for multi-objective studies, asynchronous like ASHA.

Rungs sit at ``min_epochs x reduction_factor^k`` epochs. When a trial reaches a rung it
records its point there, (validation accuracy, cumulative training energy so far), and is
compared with every trial of the study that reached the same rung before it, stopped ones
included. It continues only if it is among the top ``1 / reduction_factor`` of them by
non-dominated sorting: the non-dominated rank, then, within a rank, NSGA-II's crowding
distance (``order = "crowding"``, the default) or the greedy epsilon-net of Salinas et al.
2021 that syne-tune's MOASHA ranks by (``order = "epsilon_net"``). As in ASHA there is no
waiting for a rung to fill, so any number of workers can share a study. As in Optuna's
``SuccessiveHalvingPruner``, while fewer than ``reduction_factor`` trials have reached a
rung the top one still continues, and a tie favours the trial being decided.

With ``brackets`` > 1 the trials are spread over Hyperband's brackets (Li et al. 2018,
asynchronous as in Li et al. 2020): trial ``n`` runs in bracket ``s = n % brackets``,
whose first rung is ``min_epochs x reduction_factor^s``, and is ranked only against the
trials of its own bracket. Bracket 0 is the most aggressive; a bracket whose first rung
is past the planned last epoch trains every trial to the end. Where the early rungs
mislead, the later brackets still find the configurations that start slowly.

The rule is :func:`continues`, a pure function of the rung's points;
:class:`SuccessiveHalving` applies it after each epoch of one trial, storing the trial's
rung points as the ``successive_halving`` user attribute, where the other trials (in other
processes too) read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import ATTR_SUCCESSIVE_HALVING, RUNG_ORDERS, STOP_SUCCESSIVE_HALVING
from ecotune.storage import set_user_attrs

__all__ = ["SuccessiveHalving", "bracket_of", "continues", "crowding_distance",
           "epsilon_net_ahead", "nondominated_ranks", "rung_epochs"]


def bracket_of(trial_number: int, brackets: int) -> int:
    """The Hyperband bracket of trial ``trial_number``: round robin over ``brackets``.

    Example:
        >>> [bracket_of(n, 3) for n in range(7)]
        [0, 1, 2, 0, 1, 2, 0]
    """
    if brackets < 1:
        raise ValueError(f"need brackets >= 1 (got {brackets})")
    return trial_number % brackets


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The rungs up to ``max_epochs``: ``min_epochs * reduction_factor ** k``.

    Example:
        >>> rung_epochs(1, 3, 12), rung_epochs(2, 2, 12), rung_epochs(5, 3, 4)
        ([1, 3, 9], [2, 4, 8], [])
    """
    if min_epochs < 1 or reduction_factor < 2:
        raise ValueError(f"need min_epochs >= 1 and reduction_factor >= 2 (got {min_epochs}, "
                         f"{reduction_factor})")
    rungs, epoch = [], min_epochs
    while epoch <= max_epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return rungs


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Rank of each (accuracy, energy) point: 0 on the non-dominated front, 1 on the front
    of the rest, and so on.

    Example:
        >>> nondominated_ranks(np.array([[0.9, 5.0], [0.8, 2.0], [0.7, 6.0], [0.6, 7.0]]))
        array([0, 0, 1, 2])
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    acc, energy = points[:, 0], points[:, 1]
    # dominated_by[i, j]: point j dominates point i (one numpy pass, not n^2 Python calls).
    dominated_by = ((acc[None, :] >= acc[:, None]) & (energy[None, :] <= energy[:, None])
                    & ((acc[None, :] > acc[:, None]) | (energy[None, :] < energy[:, None])))
    ranks = np.full(len(points), -1)
    rank, left = 0, np.ones(len(points), dtype=bool)
    while left.any():
        front = left & ~dominated_by[:, left].any(axis=1)
        ranks[front] = rank
        left &= ~front
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point within its set (one front): the two ends
    of each objective get infinity, the others the normalised gap between their
    neighbours, summed over the objectives. Equal points share the distance of their
    value (computed over the distinct points).

    Example:
        >>> crowding_distance(np.array([[0.9, 8.0], [0.7, 4.0], [0.5, 2.0], [0.1, 0.0]]))
        array([ inf, 1.25, 1.25,  inf])
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    # Equal points get one distance, that of their value: which row of a tie is an end
    # (infinity) must not depend on the order of the rows.
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(unique) < len(points):
        return crowding_distance(unique)[inverse.reshape(-1)]
    n = len(points)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for column in range(points.shape[1]):
        order = np.argsort(points[:, column], kind="stable")
        values = points[order, column]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            gaps = (values[2:] - values[:-2]) / span
            distance[order[1:-1]] += gaps
    return distance


def epsilon_net_ahead(points: np.ndarray, current: int) -> int:
    """How many of ``points`` (one front: no point dominates another) come before point
    ``current`` in the greedy epsilon-net order (Salinas et al. 2021, as syne-tune's
    MOASHA orders a front): the most accurate point first, then each time the point
    farthest (Euclidean, in the objectives' own units: accuracy and joules) from all
    those chosen so far. Equal points share one place, so copies of ``current``'s point
    are not ahead of it, and a tie in distance goes to the more accurate point: the
    answer does not depend on the order of the rows.

    Example:
        >>> front = np.array([[0.9, 8.0], [0.7, 4.0], [0.5, 2.0], [0.1, 0.0]])
        >>> [epsilon_net_ahead(front, i) for i in range(4)]  # 0.9, 0.1 (farthest), 0.7, 0.5
        [0, 2, 3, 1]
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    unique, inverse, counts = np.unique(points, axis=0, return_inverse=True,
                                        return_counts=True)
    inverse = inverse.reshape(-1)
    # Candidates by accuracy (descending), then energy: argmax and argmin below take the
    # first of a tie, so a tie goes to the more accurate point.
    by_accuracy = np.lexsort((unique[:, 1], -unique[:, 0]))
    unique, counts = unique[by_accuracy], counts[by_accuracy]
    place_of = np.empty(len(by_accuracy), dtype=int)
    place_of[by_accuracy] = np.arange(len(by_accuracy))
    target = place_of[inverse[current]]
    chosen = np.zeros(len(unique), dtype=bool)
    nearest = np.full(len(unique), np.inf)
    pick, ahead = 0, 0  # the most accurate point first
    while pick != target:
        chosen[pick] = True
        ahead += int(counts[pick])
        nearest = np.minimum(nearest, np.hypot(*(unique - unique[pick]).T))
        pick = int(np.argmax(np.where(chosen, -np.inf, nearest)))
    return ahead


def continues(points: Sequence[Sequence[float]], current: int, reduction_factor: int,
              order: str = "crowding") -> bool:
    """Whether trial ``current`` continues past a rung.

    Args:
        points: (accuracy, energy so far) at the rung of every trial that reached it,
            the trial being decided included (row ``current``).
        current: the row of the trial being decided.
        reduction_factor: the trial continues if it is among the top
            ``max(1, len(points) // reduction_factor)``.
        order: within the trial's non-dominated rank, ``"crowding"`` (NSGA-II's crowding
            distance, larger first; a front's two ends tie at infinity) or
            ``"epsilon_net"`` (:func:`epsilon_net_ahead`: a strict order, the most
            accurate point first).

    The order is the non-dominated rank, then ``order`` within that rank. A trial
    continues when fewer than that many trials are strictly ahead of it, so ties favour
    it.

    Example:
        >>> rung = [[0.8, 1.0], [0.9, 2.0], [0.7, 2.0], [0.6, 3.0], [0.5, 4.0], [0.4, 5.0]]
        >>> [continues(rung, i, 3) for i in range(6)]  # the top two (of rank 0) continue
        [True, True, False, False, False, False]
        >>> continues([[0.6, 2.0]], 0, 3)  # alone at its rung
        True
        >>> front = [[0.9, 8.0], [0.7, 4.0], [0.5, 2.0]]  # one front, the top one goes on
        >>> [continues(front, i, 3) for i in range(3)]  # crowding: both ends tie
        [True, False, True]
        >>> [continues(front, i, 3, order="epsilon_net") for i in range(3)]
        [True, False, False]
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if not 0 <= current < len(pts):
        raise ValueError(f"current must index one of the {len(pts)} points (got {current})")
    if order not in RUNG_ORDERS:
        raise ValueError(f"order must be one of {', '.join(RUNG_ORDERS)} (got {order!r})")
    keep = max(1, len(pts) // reduction_factor)
    ranks = nondominated_ranks(pts)
    # Every trial of a lower rank is ahead; within the trial's own rank, those its order
    # puts first are (the other ranks' order cannot matter).
    lower = int((ranks < ranks[current]).sum())
    if lower >= keep:
        return False
    members = np.flatnonzero(ranks == ranks[current])
    mine = int(np.flatnonzero(members == current)[0])
    if order == "epsilon_net":
        return lower + epsilon_net_ahead(pts[members], mine) < keep
    crowding = crowding_distance(pts[members])
    return lower + int((crowding > crowding[mine]).sum()) < keep


class SuccessiveHalving:
    """Per-epoch watcher of one trial: at each rung below the planned last epoch, stores the
    trial's rung point and stops training (raising ``StopTraining``) unless
    :func:`continues`.

    Args:
        trial: the running Optuna trial (its study holds the other trials' rung points).
        planned_epochs: the trial's last epoch; no decision is taken there.
        min_epochs: the first rung.
        reduction_factor: rungs multiply by it; the top ``1 / reduction_factor`` continue.
        brackets: Hyperband brackets (1: plain successive halving); the trial's is
            :func:`bracket_of` its number, its first rung
            ``min_epochs x reduction_factor^bracket``.
        order: how a rung orders the trials within a non-dominated rank
            (``ecotune.names.RUNG_ORDERS``, :func:`continues`).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> for accuracy in (0.9, 0.5):  # the second is behind the first at rung 1
        ...     trial = study.ask()
        ...     watch = SuccessiveHalving(trial, planned_epochs=4, min_epochs=1,
        ...                               reduction_factor=2)
        ...     try:
        ...         watch(EpochRecord(1, None, accuracy, 1.0, energy_j=2.0))
        ...     except StopTraining as stop:
        ...         print(trial.number, stop.reason, watch.stopped_at_epoch)
        1 successive_halving 1
    """

    def __init__(self, trial: Any, planned_epochs: int, min_epochs: int,
                 reduction_factor: int, brackets: int = 1, order: str = "crowding") -> None:
        if order not in RUNG_ORDERS:
            raise ValueError(f"order must be one of {', '.join(RUNG_ORDERS)} (got {order!r})")
        self.trial = trial
        self.order = order
        self.planned_epochs = planned_epochs
        self.brackets = brackets
        self.bracket = bracket_of(trial.number, brackets)
        self.rungs = set(rung_epochs(min_epochs * reduction_factor ** self.bracket,
                                     reduction_factor, planned_epochs))
        self.reduction_factor = reduction_factor
        self.points: dict[str, list[float]] = {}
        self.stopped_at_epoch: int | None = None

    def _others(self, epoch: int) -> list[list[float]]:
        key = str(epoch)
        return [t.user_attrs[ATTR_SUCCESSIVE_HALVING][key]
                for t in self.trial.study.get_trials(deepcopy=False)
                if t.number != self.trial.number
                and bracket_of(t.number, self.brackets) == self.bracket
                and key in t.user_attrs.get(ATTR_SUCCESSIVE_HALVING, {})]

    def __call__(self, record: EpochRecord) -> None:
        if record.epoch not in self.rungs or record.energy_j is None:
            return
        key = str(record.epoch)
        self.points[key] = [float(record.val_accuracy), float(record.energy_j)]
        # Stored before deciding: a trial reaching this rung later compares with it
        # (plain SQL on SQLite and PostgreSQL: the same row as trial.set_user_attr).
        set_user_attrs(self.trial, {ATTR_SUCCESSIVE_HALVING: dict(self.points)})
        if record.epoch >= self.planned_epochs:
            return
        others = self._others(record.epoch)
        if not continues([*others, self.points[key]], len(others), self.reduction_factor,
                         self.order):
            self.stopped_at_epoch = record.epoch
            raise StopTraining(STOP_SUCCESSIVE_HALVING)
