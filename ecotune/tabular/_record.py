"""Record a study's whole grid with the built-in trainer into a table, resumably.

Each configuration of the study's grid (:meth:`StudySpec.grid`) runs once, to its full
epochs, as a one-trial study through the public ``ecotune.run`` (in memory; the spec's
early stopping and budgets are switched off so nothing cuts training short). After each
trial its learning curve and final figures are appended to the table and flushed, so an
interrupted recording loses at most the trial that was running: run the same command
again and it records only the configurations the table lacks.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ecotune.names import (
    ATTR_CO2,
    ATTR_DURATION,
    ATTR_ENERGY,
    ATTR_ENERGY_IS_ESTIMATE,
    ATTR_INFERENCE,
    ATTR_METER,
    ATTR_TEST_ACCURACY,
    ATTR_TRAINING,
)
from ecotune.spec import (
    BudgetsSection,
    CategoricalParam,
    EarlyStoppingSection,
    StudySpec,
    load_spec,
)
from ecotune.tabular._table import (
    TableError,
    config_key,
    read_table,
    rewrite_without,
    write_rows,
)

__all__ = ["record_table", "RecordSession", "grid_configs", "machine_description",
           "table_spec"]

@dataclass
class RecordSession:
    """What one call of :func:`record_table` did."""

    path: Path
    planned: int  # configurations in the grid
    already: int  # found in the table when the session began
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)  # recorded now
    wall_s: float = 0.0


def grid_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """Every configuration of ``spec``'s grid, in the order of its search space.

    Raises:
        TableError: a float knob has no ``grid = [...]`` list.

    Example:
        >>> spec = load_spec({"study": {"name": "g"}, "search_space": {
        ...     "lr": {"type": "float", "low": 0.01, "high": 0.1, "grid": [0.01, 0.1]},
        ...     "epochs": {"type": "int", "low": 1, "high": 2}}})
        >>> grid_configs(spec)  # doctest: +NORMALIZE_WHITESPACE
        [{'lr': 0.01, 'epochs': 1}, {'lr': 0.01, 'epochs': 2}, {'lr': 0.1, 'epochs': 1},
         {'lr': 0.1, 'epochs': 2}]
    """
    grid = spec.grid()
    names = list(spec.search_space)
    lacking = [n for n in names if n not in grid]
    if lacking:
        raise TableError(f"search_space.{lacking[0]}: a recorded table needs a grid: give "
                         "the float knob `grid = [...]` (or make it categorical)")
    if not names:
        raise TableError("a recorded table needs a non-empty search_space")
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def table_spec(spec: StudySpec) -> dict[str, Any]:
    """The part of ``spec`` that decides a table's contents (for its ``spec`` header line):
    everything but storage, sampler, trial counts, early stopping, budgets and
    ``[training] test_evaluation``."""
    raw = spec.model_dump(mode="json")
    study = raw.pop("study")
    for key in ("early_stopping", "budgets"):
        raw.pop(key)
    raw["training"].pop("test_evaluation", None)  # a recording evaluates every trial
    return {"study": {"name": study["name"], "objectives": study["objectives"],
                      "seed": study["seed"]}, **raw}


def _as_recorded_now(described: dict[str, Any]) -> dict[str, Any]:
    """A table's ``spec`` header as :func:`table_spec` writes it today: a table recorded
    before ``[training] seed`` existed trained with the study's seed (else 0)."""
    training = described.get("training")
    if isinstance(training, dict) and "seed" not in training:
        seed = (described.get("study") or {}).get("seed")
        described = {**described, "training": {**training, "seed": seed or 0}}
    return described


def machine_description() -> str:
    """The machine, in one line: OS, CPU, cores, Python and torch versions (no host name)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "absent"
    return (f"{platform.system()} {platform.release()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"torch {torch_version}")


def _point_spec(spec: StudySpec, point: Mapping[str, Any]) -> StudySpec:
    # One-valued categoricals: the trial's params are exactly the grid point.
    space = {k: CategoricalParam(type="categorical", choices=(v,)) for k, v in point.items()}
    return spec.model_copy(update={
        "early_stopping": EarlyStoppingSection(), "budgets": BudgetsSection(),
        "search_space": space}).with_settings(
            study={"name": f"{spec.study.name}-record", "storage": "sqlite:///:memory:",
                   "sampler": "random", "n_trials": 1},
            training={"test_evaluation": "all"})  # the table has every trial's test figures


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _rows(trial: optuna.trial.FrozenTrial, point: Mapping[str, Any]) -> list[dict[str, Any]]:
    attrs = trial.user_attrs
    training = attrs.get(ATTR_TRAINING) or {}
    inference = attrs.get(ATTR_INFERENCE) or {}
    complete = trial.state == optuna.trial.TrialState.COMPLETE
    wall_s = ((trial.datetime_complete - trial.datetime_start).total_seconds()
              if trial.datetime_complete and trial.datetime_start else None)
    finals = {
        "state": "COMPLETE" if complete else "FAIL",
        "accuracy": training.get("val_accuracy"),  # the accuracy objective
        "final_energy_j": attrs.get(ATTR_ENERGY),
        "duration_s": attrs.get(ATTR_DURATION),
        "co2_g": attrs.get(ATTR_CO2),
        "test_accuracy": attrs.get(ATTR_TEST_ACCURACY),
        "inference_energy_pj": inference.get("asic_pj"),
        "epochs_run": training.get("epochs_run", 0) if complete else 0,
        "meter": attrs.get(ATTR_METER),
        "energy_is_estimate": attrs.get(ATTR_ENERGY_IS_ESTIMATE),
        "trial_wall_s": wall_s,
        "evaluation_energy_j": attrs.get("evaluation_energy_j"),
    }
    if not complete:
        return [{**point, "epoch": 0, **finals}]
    return [{**point, "epoch": e["epoch"], "val_accuracy": e["val_accuracy"],
             "energy_j": e["energy_j"], "elapsed_s": e["elapsed_s"], **finals}
            for e in training.get("learning_curve", [])]


def record_table(spec: StudySpec | Mapping[str, Any] | str | os.PathLike,
                 path: str | os.PathLike, command: str = "",
                 on_trial: Callable[[optuna.trial.FrozenTrial, int, int], None] | None = None,
                 reverse: bool = False) -> RecordSession:
    """Run every configuration of ``spec``'s grid that the table at ``path`` lacks, and
    append each to it as soon as it finishes.

    Args:
        spec: the study (a file, dict or spec); every float knob needs a ``grid``.
        path: the table; created with its header lines on the first recorded trial.
        command: the command line, for the ``command`` header line.
        on_trial: called after each recorded trial with ``(trial, done, planned)``.
        reverse: take the grid from its end. A second recorder started with
            ``reverse=True`` on the same table shares the work: before each configuration
            each recorder reads the table again and skips what the other has recorded.

    Raises:
        TableError: the spec has no grid, or the table was recorded from another spec
            (other knobs, data, model or training settings): nothing is run then.
        KeyboardInterrupt: the running trial is lost; every finished one is in the table.
    """
    from ecotune.search import run

    spec = load_spec(spec)
    configs = grid_configs(spec)
    names = list(spec.search_space)
    path = Path(path)
    described = table_spec(spec)
    done: set[tuple[str, ...]] = set()
    resumed = path.exists() and path.stat().st_size > 0
    if resumed:
        table = read_table(path)
        if table.knobs and table.knobs != names:
            raise TableError(f"{path} was recorded over the knobs {table.knobs}, the study "
                             f"file searches {names}")
        if _as_recorded_now(table.spec) != json.loads(json.dumps(described)):
            raise TableError(f"{path} was recorded from another study spec (data, model, "
                             "training or search space differ): record into a new table")
        if table.incomplete or not path.read_text(encoding="utf-8").endswith("\n"):
            rewrite_without(path, table.incomplete, names)
        done = set(table.configs)
    todo = [p for p in configs if config_key(p, names) not in done]
    session = RecordSession(path, len(configs), len(configs) - len(todo))
    header = {"study": spec.study.name, "command": command, "machine": machine_description(),
              "meter": "", "started": _now(), "spec": json.dumps(described, sort_keys=True)}
    notes = ([f"resumed: {_now()}, {len(done)} of {len(configs)} recorded; machine "
              f"{machine_description()}"] if resumed and todo else [])
    started = time.perf_counter()
    for point in (reversed(todo) if reverse else todo):
        if path.exists() and config_key(point, names) in read_table(path).configs:
            continue  # another recorder on the same table did it meanwhile
        trial = run(_point_spec(spec, point)).trials[-1]
        meter = trial.user_attrs.get(ATTR_METER) or "unknown"
        estimate = trial.user_attrs.get(ATTR_ENERGY_IS_ESTIMATE)
        header["meter"] = f"{meter} ({'estimate' if estimate else 'measured'})"
        write_rows(path, names, _rows(trial, point), header=header, notes=notes)
        notes = []
        session.trials.append(trial)
        if on_trial is not None:
            on_trial(trial, session.already + len(session.trials), session.planned)
    session.wall_s = time.perf_counter() - started
    if session.trials:
        write_rows(path, names, [], notes=[
            f"session: {_now()}, {len(session.trials)} trial(s) recorded in "
            f"{session.wall_s:.1f} s wall time"])
    return session
