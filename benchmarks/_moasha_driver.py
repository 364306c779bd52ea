"""syne-tune's MOASHA behind a pipe: the peer side of benchmarks/peer_moasha.py.

Runs in the benchmark's own environment (benchmarks/.peer-venv, with syne-tune; no
ecotune), so that syne-tune never becomes an ecotune dependency. It reads one JSON object
per line on stdin and answers one per line on stdout, calling the scheduler as syne-tune's
own Tuner does (suggest, on_trial_add, on_trial_result after each epoch, on_trial_remove
after a stop, on_trial_complete when a trial trains to its end); every decision is
MOASHA's.

    {"op": "init", "space": {...}, "max_t": 12, "grace_period": 3, "reduction_factor": 2,
     "brackets": 1, "seed": 0, "priority": "shipped"}           -> {"ok": true, "version": ...}
    {"op": "suggest", "trial_id": 0}                             -> {"config": {...}}
    {"op": "result", "trial_id": 0, "epoch": 3, "accuracy": 0.8, "energy_j": 9.1,
     "last": false}                                              -> {"continue": true}
    {"op": "curve", "trial_id": 0, "accuracy": [...], "energy_j": [...]}
                                                                 -> {"epochs": 3}

``curve`` is ``result`` for each epoch in turn, in one call (one simulated worker: no other
trial's result comes in between): the epoch after which MOASHA stopped the trial, or the
curve's length where it trained to its end.

``priority``: ``"shipped"`` (MOASHA's default ``NonDominatedPriority``) or ``"rank"``
(:func:`rank_priority`, the same sort read as ranks). MOASHA minimises both metrics it is
given: the validation error (1 - accuracy) and the cumulative training energy in joules.
It samples configurations with numpy's global generator (syne-tune's ``Domain.sample``
without a random state), which ``init`` seeds.

``"sort": "fast"`` (the default) puts ``_moasha_sort.nondominated_sort`` in place of
syne-tune's own in MOASHA's priority: the same answers (checked against syne-tune's on
random inputs when the driver first uses it; a difference ends the driver), in a fraction
of the time, which on a table of hundreds of configurations is most of a run's.
``"shipped"``: syne-tune's, untouched.
"""

from __future__ import annotations

import datetime
import json
import sys

import numpy as np


def domain(spec: dict):
    from syne_tune import config_space as cs

    kind = spec["type"]
    if kind == "choice":
        return cs.choice(list(spec["choices"]))
    if kind == "int":
        if spec.get("step") not in (None, 1):
            return cs.choice(list(range(spec["low"], spec["high"] + 1, spec["step"])))
        return (cs.lograndint if spec["log"] else cs.randint)(spec["low"], spec["high"])
    if spec.get("step") is not None:
        count = int(round((spec["high"] - spec["low"]) / spec["step"])) + 1
        return cs.choice([spec["low"] + i * spec["step"] for i in range(count)])
    return (cs.loguniform if spec["log"] else cs.uniform)(spec["low"], spec["high"])


def rank_priority():
    """MOASHA's own non-dominated sort with its epsilon-net, handed to its ``Bracket`` as
    each point's rank in that order. syne-tune 0.16's ``NonDominatedPriority`` returns the
    order itself (the indices of the points, best first), which the ``Bracket`` reads as
    priorities: it then decides on the index of the rung's worst point, not on the new
    trial's rank (benchmarks/README.md shows a case)."""
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import (
        NonDominatedPriority,
    )

    class RankPriority(NonDominatedPriority):
        def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
            order = super().priority_unsafe(objectives)
            ranks = np.empty(len(order), dtype=int)
            ranks[order] = np.arange(len(order))
            return ranks

    return RankPriority()


def use_sort(kind: str) -> None:
    """MOASHA's priority sorts with syne-tune's own ``nondominated_sort`` (``"shipped"``)
    or with ``_moasha_sort``'s (``"fast"``), checked once against syne-tune's first."""
    from syne_tune.optimizer.schedulers.multiobjective import (
        multiobjective_priority,
        non_dominated_priority,
    )

    if kind == "shipped":
        multiobjective_priority.nondominated_sort = non_dominated_priority.nondominated_sort
        return
    if kind != "fast":
        raise ValueError(f"unknown sort {kind!r}; expected fast or shipped")
    import _moasha_sort

    if multiobjective_priority.nondominated_sort is not _moasha_sort.nondominated_sort:
        _moasha_sort.check(cases=30)
        multiobjective_priority.nondominated_sort = _moasha_sort.nondominated_sort


def plain(value):
    """numpy scalars as JSON numbers."""
    return value.item() if isinstance(value, np.generic) else value


def result(scheduler, trial, epoch: int, accuracy: float, energy_j: float,
           last: bool) -> bool:
    """One epoch's result, as syne-tune's Tuner hands it over: to on_trial_result; a stop
    removes the trial; a trial that ends without a stop is completed with its last
    result. True: MOASHA lets it go on."""
    from syne_tune.optimizer.scheduler import SchedulerDecision

    reported = {"epoch": epoch, "error": 1.0 - accuracy, "energy_j": energy_j}
    go_on = scheduler.on_trial_result(trial, reported) == SchedulerDecision.CONTINUE
    if not go_on:
        scheduler.on_trial_remove(trial)
    elif last:
        scheduler.on_trial_complete(trial, reported)
    return go_on


def main() -> None:
    import syne_tune
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

    scheduler = None
    trials: dict[int, Trial] = {}
    metrics = ("error", "energy_j")
    for line in sys.stdin:
        message = json.loads(line)
        op = message["op"]
        if op == "init":
            use_sort(message.get("sort", "fast"))
            np.random.seed(message["seed"])
            priority = rank_priority() if message.get("priority") == "rank" else None
            scheduler = MOASHA({k: domain(v) for k, v in message["space"].items()},
                               metrics=list(metrics), do_minimize=True, time_attr="epoch",
                               max_t=message["max_t"], grace_period=message["grace_period"],
                               reduction_factor=message["reduction_factor"],
                               brackets=message["brackets"], random_seed=message["seed"],
                               multiobjective_priority=priority)
            trials = {}
            answer = {"ok": True, "version": syne_tune.__version__}
        elif op == "suggest":
            suggestion = scheduler.suggest()
            if suggestion is None:
                answer = {"config": None}
            else:
                config = {k: plain(v) for k, v in suggestion.config.items()}
                trial = Trial(message["trial_id"], config, datetime.datetime.now())
                trials[trial.trial_id] = trial
                scheduler.on_trial_add(trial)
                answer = {"config": config}
        elif op == "result":
            go_on = result(scheduler, trials[message["trial_id"]], message["epoch"],
                           message["accuracy"], message["energy_j"], message["last"])
            answer = {"continue": go_on}
        elif op == "curve":
            trial, n = trials[message["trial_id"]], len(message["accuracy"])
            epochs = n
            for i, (accuracy, energy_j) in enumerate(zip(message["accuracy"],
                                                         message["energy_j"])):
                if not result(scheduler, trial, i + 1, accuracy, energy_j, i + 1 == n):
                    epochs = i + 1
                    break
            answer = {"epochs": epochs}
        elif op == "quit":
            return
        else:
            answer = {"error": f"unknown op {op!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
