"""``run(spec)``: a whole study from a spec, with the built-in trainer."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from ecotune.execution import count_trials, run_worker, start_local_workers
from ecotune.rules import StudyEnergyBudget
from ecotune.search._study import open_study, prepare
from ecotune.spec import StudySpec, load_spec

__all__ = ["run", "optimize", "planned_trials", "start_workers", "DEFAULT_N_TRIALS"]

#: Trials per run when the spec gives no n_trials (the grid sampler: the whole grid).
DEFAULT_N_TRIALS = 20

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def planned_trials(spec: StudySpec) -> int:
    """How many trials one run of ``spec`` adds."""
    if spec.study.n_trials is not None:
        return spec.study.n_trials
    if spec.study.sampler.name == "grid":
        return math.prod(len(values) for values in spec.grid().values())
    return DEFAULT_N_TRIALS


def run(spec: StudySpec | Mapping[str, Any] | str | os.PathLike,
        callbacks: Sequence[Callback] = (), **overrides: Any) -> optuna.Study:
    """Run the study a spec describes and return it.

    Args:
        spec: a :class:`StudySpec`, a study-file path or an equivalent dict.
        callbacks: called after each trial with ``(study, frozen_trial)``.
        **overrides: study settings replacing the spec's: ``n_trials``, ``sampler``,
            ``storage``, ``study_name``, ``seed``.

    Running again on the same storage and study name adds trials to that study. A trial
    that raises ends as failed, with the reason in its ``fail_reason`` attribute; the
    study goes on.

    Raises:
        ecotune.devices.DeviceError: ``[training] device`` names a GPU this machine
            lacks (before anything is stored).

    Example:
        >>> study = run({"study": {"name": "doc-run", "storage": "sqlite:///:memory:",
        ...                        "n_trials": 2, "sampler": "random", "seed": 0},
        ...              "model": {"name": "mlp"}, "training": {"epochs": 1},
        ...              "energy": {"meter": "cputime"},
        ...              "search_space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2,
        ...                                      "log": True}}})
        >>> len(study.trials), study.metric_names
        (2, ['accuracy', 'energy_j'])
    """
    from ecotune.devices import resolve_device

    spec = load_spec(spec).with_overrides(**overrides)  # validated once, here
    resolve_device(spec.training.device)  # a missing GPU: before any storage
    spec, study = prepare(spec)
    optimize(spec, study, callbacks)
    return study


def optimize(spec: StudySpec, study: optuna.Study, callbacks: Sequence[Callback] = (),
             target_trials: int | None = None) -> StudyEnergyBudget | None:
    """Add ``planned_trials(spec)`` trials to ``study``, within the study energy budget.

    Args:
        target_trials: stop once the study holds this many trials over all workers
            (default: the trials stored now + ``planned_trials(spec)``); see
            :mod:`ecotune.execution`.

    Returns the budget (its ``reached`` says whether it ended the run), or None.
    """
    if target_trials is None:
        target_trials = count_trials(study) + planned_trials(spec)
    return run_worker(spec, study, target_trials, _builtin_objective(spec), callbacks)


def _builtin_objective(spec: StudySpec) -> Callable[[optuna.Trial], Sequence[float]]:
    from ecotune.search._objective import BuiltinObjective  # torch: only when training

    objective = BuiltinObjective(spec)
    objective.warm_up()
    return objective


def _worker_main(spec_data: dict, worker_index: int, target_trials: int) -> None:
    """What a spawned worker runs: open the study (storing nothing: the parent stored the
    spec) and run trials until the study holds ``target_trials``."""
    spec = StudySpec.model_validate(spec_data)
    study = open_study(spec, worker_index)
    run_worker(spec, study, target_trials, _builtin_objective(spec))


def start_workers(spec: StudySpec, target_trials: int, n_processes: int,
                  gpus: Sequence[str] = ()) -> Any:
    """Start ``n_processes`` worker processes (indexes 1..n) that run the built-in trainer
    on ``spec``'s study: a context manager (:func:`ecotune.execution.start_local_workers`)
    yielding the processes."""
    return start_local_workers(spec, target_trials, n_processes, _worker_main, gpus)
