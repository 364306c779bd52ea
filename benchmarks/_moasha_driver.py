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

``priority``: ``"shipped"`` (MOASHA's default ``NonDominatedPriority``) or ``"rank"``
(:func:`rank_priority`, the same sort read as ranks). MOASHA minimises both metrics it is
given: the validation error (1 - accuracy) and the cumulative training energy in joules.
It samples configurations with numpy's global generator (syne-tune's ``Domain.sample``
without a random state), which ``init`` seeds.
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


def plain(value):
    """numpy scalars as JSON numbers."""
    return value.item() if isinstance(value, np.generic) else value


def main() -> None:
    import syne_tune
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

    scheduler = None
    trials: dict[int, Trial] = {}
    metrics = ("error", "energy_j")
    for line in sys.stdin:
        message = json.loads(line)
        op = message["op"]
        if op == "init":
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
            # As syne-tune's Tuner: every result goes to on_trial_result; a stop removes
            # the trial; a trial that ends without a stop is completed with its last one.
            trial = trials[message["trial_id"]]
            result = {"epoch": message["epoch"], "error": 1.0 - message["accuracy"],
                      "energy_j": message["energy_j"]}
            go_on = scheduler.on_trial_result(trial, result) == SchedulerDecision.CONTINUE
            if not go_on:
                scheduler.on_trial_remove(trial)
            elif message["last"]:
                scheduler.on_trial_complete(trial, result)
            answer = {"continue": go_on}
        elif op == "quit":
            return
        else:
            answer = {"error": f"unknown op {op!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
