"""Replay a recorded table under an outside multi-fidelity scheduler (ask/tell), counting
energy exactly as :func:`ecotune.tabular.replay` does.

A third party's scheduler (syne-tune's MOASHA in ``benchmarks/peer_moasha.py``) proposes
configurations and decides after each epoch whether a trial goes on; this module walks
the table's recorded curves for it, on a given number of simulated workers, and turns
what happened into a :class:`~ecotune.tabular.ReplayRun`, so that the same summaries,
hypervolume history (:func:`ecotune.pareto.hypervolume_history`, the feasibility rule)
and energy-to-a-level figures apply. The energy is the replay's:

- a trial stopped after epoch ``k`` before its last costs the cumulative energy of its
  first ``k`` epochs plus the energy its window recorded after the last epoch
  (:attr:`ConfigRecord.tail_energy_j`); it is pruned (no point on the front) or, with
  ``on_stop = "complete"``, complete with its values at epoch ``k``;
- a trial that trains to its last epoch costs ``final_energy_j``, plus its
  ``evaluation_energy_j`` where ``[training] test_evaluation`` would evaluate it
  (``"front"``: not dominated by the complete trials finished before it);
- a failed recording costs its recorded energy and leaves no point.

Sampled knob values are read as the table's nearest grid values, as the replay does
(:meth:`TableObjective.lookup`). With ``resource`` set (e.g. ``"epochs"``), the scheduler
does not search that knob: each trial walks the longest recorded curve of its
configuration and the scheduler's stops are its only epoch decisions.

With one worker a trial's epochs reach the scheduler one after the other with nothing in
between, so a scheduler that also has ``on_curve`` gets the whole curve in one call
instead (the same decisions; for a scheduler in another process, one round trip a trial
rather than one an epoch).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import optuna

from ecotune.names import ATTR_ENERGY, ATTR_EVALUATION_ENERGY, ATTR_REPLAY_STOPPED
from ecotune.pareto import REACH_TOLERANCE, HypervolumeHistory, dominated
from ecotune.rules import search_energy_j
from ecotune.spec import CategoricalParam, StudySpec, load_spec
from ecotune.tabular._pareto import table_reference
from ecotune.tabular._replay import ReplayRun, TableObjective, check_fits
from ecotune.tabular._table import ConfigRecord, RecordedTable, TableError

__all__ = ["CurveScheduler", "Scheduler", "ScheduledTrial", "replay_scheduler",
           "stopped_energy_j"]


class Scheduler(Protocol):
    """What :func:`replay_scheduler` asks of a scheduler. Metrics are the epoch's
    validation accuracy and the trial's cumulative training energy (J) so far."""

    def suggest(self, trial_id: int) -> Mapping[str, Any] | None:
        """Knob values for a new trial; None: the scheduler proposes nothing more."""

    def on_result(self, trial_id: int, epoch: int, accuracy: float, energy_j: float,
                  last: bool) -> bool:
        """Each epoch's result, the trial's last (``last``) included: True to go on,
        False to stop it. After the last epoch the trial ends either way (it trained to
        its end: not a stop)."""


class CurveScheduler(Scheduler, Protocol):
    """A :class:`Scheduler` that can also take a trial's whole curve at once (used with
    one worker): what :meth:`on_result` would decide epoch by epoch, in one call."""

    def on_curve(self, trial_id: int, accuracy: list[float], energy_j: list[float]) -> int:
        """The trial's validation accuracy and cumulative energy at each epoch it can
        train (its last epoch last); returns how many it trains: the epoch after which
        :meth:`on_result` would have stopped it, or the number of epochs given (to its
        end)."""


@dataclass(frozen=True)
class ScheduledTrial:
    """One trial of a scheduled replay, in the order trials finished."""

    trial_id: int
    key: tuple[str, ...]  # the table configuration it walked
    epochs_run: int
    stopped: bool  # stopped by the scheduler before its last epoch
    energy_j: float  # training energy, as the replay counts it
    evaluation_energy_j: float
    finished_s: float  # simulated time at which it ended


def stopped_energy_j(record: ConfigRecord, epoch: int) -> float:
    """What a trial stopped after ``epoch`` (1-based, before its last) cost: its epochs'
    cumulative energy plus the window's energy after the last epoch, as the replay of
    early stopping and successive halving counts it.

    Example:
        >>> import numpy as np
        >>> r = ConfigRecord({}, "COMPLETE", np.array([1, 2, 3]), np.array([.5, .6, .7]),
        ...                  np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0]),
        ...                  {"final_energy_j": 6.5})
        >>> stopped_energy_j(r, 1)
        2.5
    """
    return float(record.energy_j[epoch - 1]) + record.tail_energy_j


def _planned(record: ConfigRecord) -> int:
    return int(record.finals.get("epochs_run") or len(record.epochs))


def replay_scheduler(table: RecordedTable, spec: StudySpec | Mapping[str, Any] | str,
                     scheduler: Scheduler, *, label: str, seed: int, workers: int = 1,
                     budget_j: float | None = None, n_trials: int | None = None,
                     resource: str | None = None,
                     trials_out: list[ScheduledTrial] | None = None,
                     stop_at_ratio: float | None = None) -> ReplayRun:
    """One run of ``scheduler`` on ``table``: trials start while a worker is free, the
    search energy of the finished trials is below ``budget_j`` and fewer than ``n_trials``
    have started (None: no such limit); epochs end at their recorded ``elapsed_s``, so
    with several workers results arrive in the order they would have live. With one
    worker it is the replay's sequential search.

    ``stop_at_ratio`` (e.g. 0.995): no trial starts once the hypervolume of the finished
    trials has reached that fraction of the table's reference hypervolume (reached as
    :func:`ecotune.pareto.energy_to_reach` counts it); the running ones finish. Every
    trial before that point is the same as in the run without it, so the search energy
    to reach any level up to ``stop_at_ratio`` is exactly the full run's; the total
    search energy and the final ratio are those at the stop.

    ``trials_out`` gets the :class:`ScheduledTrial` of each finished trial.

    Raises:
        TableError: the table does not fit the spec, a proposal is not in the table, or
            the objectives are not accuracy and energy_j.
        ValueError: bad counts, or no limit at all (neither budget nor trial count).
    """
    spec = load_spec(spec)
    objectives = tuple(spec.study.objectives)
    if objectives != ("accuracy", "energy_j"):
        raise TableError("a scheduled replay needs the objectives accuracy and energy_j "
                         f"(the study has {list(objectives)})")
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (got {workers})")
    if budget_j is None and n_trials is None:
        raise ValueError("give a search-energy budget, a number of trials, or both")
    if stop_at_ratio is not None and not 0 < stop_at_ratio <= 1:
        raise ValueError(f"stop_at_ratio must be in (0, 1] (got {stop_at_ratio})")
    if resource is not None and resource not in spec.search_space:
        raise ValueError(f"resource {resource!r} is not a knob of the study")
    check_fits(table, spec)
    lookup = TableObjective(table, spec).lookup
    top = None
    if resource is not None:
        param = spec.search_space[resource]
        top = (max(param.choices) if isinstance(param, CategoricalParam) else
               max(float(key[table.knobs.index(resource)]) for key in table.configs))
    reference, reference_hv, maximize = table_reference(table, objectives)
    history = HypervolumeHistory(maximize, reference)
    volumes: list[float] = []
    # The ratio compared as energy_to_reach compares it, so that the stop is its "reached".
    stop_ratio = (math.inf if stop_at_ratio is None or reference_hv <= 0 else
                  stop_at_ratio - REACH_TOLERANCE * max(1.0, stop_at_ratio))
    evaluation = spec.training.test_evaluation
    on_stop = spec.early_stopping.on_stop
    whole_curves = workers == 1 and callable(getattr(scheduler, "on_curve", None))
    started_at = time.perf_counter()

    records: dict[int, ConfigRecord] = {}
    keys: dict[int, tuple[str, ...]] = {}
    start_s: dict[int, float] = {}
    # (time, trial id, epoch): 0: failed; -k: ends after epoch k (whole curves)
    events: list[tuple[float, int, int]] = []
    finished: list[optuna.trial.FrozenTrial] = []
    points: list[tuple[float, float]] = []  # complete trials' values, for "front"
    spent_j = 0.0
    running = 0
    next_id = 0
    exhausted = False
    reached = False  # the hypervolume ratio reached stop_at_ratio

    def start(now: float) -> None:
        nonlocal next_id, running, exhausted
        while (running < workers and not exhausted
               and (budget_j is None or spent_j < budget_j)
               and not reached
               and (n_trials is None or next_id < n_trials)):
            knobs = scheduler.suggest(next_id)
            if knobs is None:
                exhausted = True
                return
            knobs = dict(knobs)
            if resource is not None:
                knobs[resource] = top
            record = lookup(knobs)
            tid, next_id = next_id, next_id + 1
            records[tid], start_s[tid] = record, now
            keys[tid] = tuple(record.knobs[k] for k in table.knobs)
            running += 1
            if record.failed or len(record.epochs) == 0:
                heapq.heappush(events, (now, tid, 0))
            elif whole_curves:
                n = min(_planned(record), len(record.epochs))
                k = scheduler.on_curve(tid, record.val_accuracy[:n].tolist(),
                                       record.energy_j[:n].tolist())
                if not 1 <= k <= n:
                    raise ValueError(f"on_curve of trial {tid} returned {k} epochs; "
                                     f"expected 1 to {n}")
                heapq.heappush(events, (now + float(record.elapsed_s[k - 1]), tid, -k))
            else:
                heapq.heappush(events, (now + float(record.elapsed_s[0]), tid, 1))

    def finish(tid: int, now: float, epochs_run: int, stopped: bool) -> None:
        nonlocal spent_j, running, reached
        record = records[tid]
        attrs: dict[str, Any] = {}
        values = None
        evaluation_j = 0.0
        if record.failed or epochs_run == 0:
            attrs[ATTR_ENERGY] = record.final_energy_j
            state = optuna.trial.TrialState.FAIL
        elif stopped:
            attrs[ATTR_ENERGY] = stopped_energy_j(record, epochs_run)
            attrs[ATTR_REPLAY_STOPPED] = epochs_run
            i = epochs_run - 1
            if on_stop == "complete":
                values = [float(record.val_accuracy[i]), attrs[ATTR_ENERGY]]
                state = optuna.trial.TrialState.COMPLETE
            else:
                state = optuna.trial.TrialState.PRUNED
        else:
            attrs[ATTR_ENERGY] = record.final_energy_j
            values = [float(record.finals["accuracy"]), record.final_energy_j]
            state = optuna.trial.TrialState.COMPLETE
            if evaluation == "all" or (evaluation == "front"
                                       and not dominated(values, points, maximize)):
                evaluation_j = record.evaluation_energy_j
                attrs[ATTR_EVALUATION_ENERGY] = evaluation_j
        if values is not None:
            points.append(tuple(values))
        trial = optuna.trial.create_trial(state=state, values=values, user_attrs=attrs)
        finished.append(trial)
        volumes.append(history.add(trial))
        reached = reached or (reference_hv > 0 and volumes[-1] / reference_hv >= stop_ratio)
        spent_j += search_energy_j(trial) or 0.0
        running -= 1
        if trials_out is not None:
            trials_out.append(ScheduledTrial(tid, keys[tid], epochs_run, stopped,
                                             attrs[ATTR_ENERGY], evaluation_j, now))

    start(0.0)
    while events:
        now, tid, epoch = heapq.heappop(events)
        record = records[tid]
        if epoch == 0:
            finish(tid, now, 0, False)
        elif epoch < 0:
            finish(tid, now, -epoch, -epoch < min(_planned(record), len(record.epochs)))
        else:
            i = epoch - 1
            accuracy, energy = float(record.val_accuracy[i]), float(record.energy_j[i])
            last = epoch >= _planned(record) or epoch >= len(record.epochs)
            go_on = scheduler.on_result(tid, epoch, accuracy, energy, last)
            if last:
                finish(tid, now, epoch, False)
            elif go_on:
                heapq.heappush(events, (start_s[tid] + float(record.elapsed_s[epoch]), tid,
                                        epoch + 1))
                continue
            else:
                finish(tid, now, epoch, True)
        start(now)

    energies = np.array([search_energy_j(t) or 0.0 for t in finished])
    ratios = (np.asarray(volumes, dtype=float) / reference_hv if reference_hv > 0
              else np.full(len(finished), np.nan))
    return ReplayRun(label, seed, energies, ratios, [t.state.name for t in finished],
                     time.perf_counter() - started_at,
                     [tuple(t.values) if t.values is not None else None for t in finished])
