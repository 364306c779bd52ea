"""Record a study's whole grid with the built-in trainer into a table, resumably.

Each distinct learning curve of the study's grid (:meth:`StudySpec.grid`) trains once, as
a one-trial study through the built-in objective (in memory; the spec's early stopping
and budgets are switched off so nothing cuts training short), to the largest ``epochs``
of the grid that the table lacks. The shorter ``epochs`` values of the same knobs are
read from that run's prefix (``prefix_of`` says from which): on the CPU a shorter run's
curve and weights are the longer run's up to its last epoch wherever nothing in training
depends on the planned epochs (tests/test_training.py shows it bit for bit), so their
validation accuracy, test accuracy (of the weights kept at that epoch) and inference
estimate are those of a real shorter run; the energy to that epoch is the longer run's
reading then, plus the longer run's tail after its last epoch, and the test evaluation is
measured in a window of its own, as a trial's is. Where the end of a run depends on its
planned epochs (``early_stopping_patience`` restores the best epoch's weights,
``energy_budget`` projects the weights once more at the end), or the longer run failed,
each ``epochs`` value trains on its own.

After each curve its rows (and its derived rows) are appended to the table in one write
and flushed, so an interrupted recording loses at most the curve that was running: run
the same command again and it records only the configurations the table lacks.
"""

from __future__ import annotations

import copy
import dataclasses
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
    ATTR_EVALUATION_ENERGY,
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
    TRIAL_COLUMNS,
    TableError,
    cell,
    config_key,
    read_table,
    rewrite_without,
    table_columns,
    write_rows,
)

__all__ = ["record_table", "RecordSession", "grid_configs", "machine_description",
           "table_spec", "derives_prefixes", "EPOCH_PLANNED_SETTINGS"]

#: Training settings that make the end of a run depend on its planned epochs: with any of
#: them set, a shorter ``epochs`` value is not a prefix of a longer run, and is recorded
#: on its own. (The trial energy budget and early stopping are off in a recording; the
#: runtime decisions are planned at fixed epochs; the trainer has no LR schedule.)
EPOCH_PLANNED_SETTINGS = ("early_stopping_patience", "energy_budget")

@dataclass
class RecordSession:
    """What one call of :func:`record_table` did."""

    path: Path
    planned: int  # configurations in the grid
    already: int  # found in the table when the session began
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)  # trained now
    derived: int = 0  # configurations recorded now from a trained run's prefix
    wall_s: float = 0.0

    @property
    def recorded(self) -> int:
        """Configurations recorded in this session (trained or derived)."""
        return len(self.trials) + self.derived


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


def derives_prefixes(spec: StudySpec, point: Mapping[str, Any]) -> bool:
    """Whether the shorter ``epochs`` values of ``point``'s knobs may be read from the
    prefix of its run: ``epochs`` is a knob, and no setting of
    :data:`EPOCH_PLANNED_SETTINGS` is on (in the training section or as a knob).

    Example:
        >>> spec = load_spec({"study": {"name": "d"}, "search_space": {
        ...     "epochs": {"type": "int", "low": 1, "high": 3},
        ...     "early_stopping_patience": {"type": "categorical", "choices": [None, 2]}}})
        >>> [derives_prefixes(spec, {"epochs": 3, "early_stopping_patience": p})
        ...  for p in (None, 2)]
        [True, False]
    """
    if "epochs" not in spec.search_space:
        return False
    _, training = spec._with_knobs(point)
    return all(getattr(training, name) is None for name in EPOCH_PLANNED_SETTINGS)


def _jobs(spec: StudySpec, points: list[dict[str, Any]]
          ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``points`` as (configuration to train, shorter configurations read from its prefix),
    in grid order: the points that differ only in ``epochs`` train once, at the largest."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for point in points:
        if derives_prefixes(spec, point):
            key = tuple(sorted((k, cell(v)) for k, v in point.items() if k != "epochs"))
        else:
            key = ("own", len(groups))  # recorded on its own
        groups.setdefault(key, []).append(point)
    jobs = []
    for group in groups.values():
        group = sorted(group, key=lambda p: p.get("epochs", 0), reverse=True)
        jobs.append((group[0], group[1:]))
    return jobs


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
        "evaluation_energy_j": attrs.get(ATTR_EVALUATION_ENERGY),
        "prefix_of": None,  # trained as is
    }
    if not complete:
        return [{**point, "epoch": 0, **finals}]
    return [{**point, "epoch": e["epoch"], "val_accuracy": e["val_accuracy"],
             "energy_j": e["energy_j"], "elapsed_s": e["elapsed_s"], **finals}
            for e in training.get("learning_curve", [])]


def _derived_rows(rows: list[dict[str, Any]], point: Mapping[str, Any],
                  figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``point`` (a shorter ``epochs``) from the longer run's ``rows``: its
    curve to ``point["epochs"]``, and the figures a run ending there has (``figures``: the
    test accuracy, inference estimate and evaluation energy of the weights then)."""
    epochs = point["epochs"]
    long_last, last = rows[-1], rows[epochs - 1]
    # The window's tail after the last epoch (closing it) is the same work at any length.
    tail_j = max(0.0, long_last["final_energy_j"] - long_last["energy_j"])
    tail_s = max(0.0, long_last["duration_s"] - long_last["elapsed_s"])
    energy_j = last["energy_j"] + tail_j
    duration_s = last["elapsed_s"] + tail_s
    co2_g = long_last["co2_g"]
    if co2_g is not None and long_last["final_energy_j"] > 0:
        co2_g = co2_g * energy_j / long_last["final_energy_j"]  # emissions: energy x factor
    overhead_s = (None if long_last["trial_wall_s"] is None else
                  max(0.0, long_last["trial_wall_s"] - long_last["duration_s"]))
    finals = {
        **{name: long_last.get(name) for name in TRIAL_COLUMNS},
        "accuracy": last["val_accuracy"],  # no patience, no projection: the last epoch's
        "final_energy_j": energy_j,
        "duration_s": duration_s,
        "co2_g": co2_g,
        "epochs_run": epochs,
        "trial_wall_s": None if overhead_s is None else duration_s + overhead_s,
        "prefix_of": long_last["epochs_run"],
        **figures,
    }
    return [{**point, **{c: r[c] for c in ("epoch", "val_accuracy", "energy_j",
                                          "elapsed_s")}, **finals}
            for r in rows[:epochs]]


class _PrefixFigures:
    """``BuiltinObjective``'s ``after_training``: for each epoch whose weights the run
    kept, the figures a run ending there has: test accuracy (one pass, in a measurement
    window of its own: ``evaluation_energy_j``) and the inference estimate."""

    def __init__(self) -> None:
        self.figures: dict[int, dict[str, Any]] = {}
        self.wall_s = 0.0  # spent here, not by the trial a shorter run would be

    def __call__(self, trial, result, data, energy) -> None:
        from ecotune.energy.hardware import INFERENCE_SAMPLE, inference_estimates
        from ecotune.search import measure
        from ecotune.training import evaluate_test

        started = time.perf_counter()
        sample = data.x_val[:INFERENCE_SAMPLE]
        if result.input_mask is not None:
            sample = sample * result.input_mask
        for epoch, state in sorted(result.states.items()):
            if epoch >= result.epochs_run:
                continue
            model = copy.deepcopy(result.model)
            model.load_state_dict(state)
            inference = inference_estimates(model, sample.to(result.device))
            with measure(None, energy) as window:
                tested = evaluate_test(dataclasses.replace(result, model=model), data)
            self.figures[epoch] = {"test_accuracy": tested.test_accuracy,
                                   "inference_energy_pj": inference["asic_pj"],
                                   "evaluation_energy_j": window.energy_j}
        self.wall_s = time.perf_counter() - started


def _train_point(spec: StudySpec, point: Mapping[str, Any],
                 shorter: list[dict[str, Any]]) -> tuple[optuna.trial.FrozenTrial,
                                                         list[dict[str, Any]]]:
    """Train ``point`` as a one-trial study, keeping the weights at the ``epochs`` of
    ``shorter``; the trial, and its rows with those of ``shorter`` derived from it (none
    where it failed)."""
    from ecotune.execution import run_worker
    from ecotune.search import BuiltinObjective, prepare

    prefixes = _PrefixFigures()
    point_spec, study = prepare(_point_spec(spec, point))
    objective = BuiltinObjective(point_spec, keep_states_at=[p["epochs"] for p in shorter],
                                 after_training=prefixes if shorter else None)
    objective.warm_up()
    run_worker(point_spec, study, 1, objective)
    trial = study.trials[-1]
    rows = _rows(trial, point)
    if rows[-1]["trial_wall_s"] is not None:
        for row in rows:
            row["trial_wall_s"] = max(0.0, row["trial_wall_s"] - prefixes.wall_s)
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return trial, rows
    for short in shorter:
        if short["epochs"] in prefixes.figures:
            rows += _derived_rows(rows[:point["epochs"]], short,
                                  prefixes.figures[short["epochs"]])
    return trial, rows


def record_table(spec: StudySpec | Mapping[str, Any] | str | os.PathLike,
                 path: str | os.PathLike, command: str = "",
                 on_trial: Callable[[optuna.trial.FrozenTrial, int, int], None] | None = None,
                 reverse: bool = False) -> RecordSession:
    """Record every configuration of ``spec``'s grid that the table at ``path`` lacks,
    appending each curve (with the shorter ``epochs`` read from its prefix, see the
    module's docstring) as soon as it finishes.

    Args:
        spec: the study (a file, dict or spec); every float knob needs a ``grid``.
        path: the table; created with its header lines on the first recorded trial.
        command: the command line, for the ``command`` header line.
        on_trial: called after each trained trial with ``(trial, done, planned)``;
            ``done`` counts the configurations recorded, derived ones included.
        reverse: take the grid from its end. A second recorder started with
            ``reverse=True`` on the same table shares the work: before each configuration
            each recorder reads the table again and skips what the other has recorded.

    Raises:
        TableError: the spec has no grid, or the table was recorded from another spec
            (other knobs, data, model or training settings): nothing is run then.
        KeyboardInterrupt: the running trial is lost; every finished one is in the table.
    """
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
        lacking = any(config_key(p, names) not in table.configs for p in configs)
        if lacking and table.columns and table.columns != table_columns(names):
            raise TableError(f"{path} was recorded by an older ecotune (its columns differ "
                             "from today's): it still replays, but record the configurations "
                             "it lacks into a new table")
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
    jobs = _jobs(spec, todo)
    for point, shorter in (reversed(jobs) if reverse else jobs):
        if path.exists():  # another recorder on the same table may have done some meanwhile
            recorded = read_table(path).configs
            left = [p for p in (point, *shorter) if config_key(p, names) not in recorded]
            if not left:
                continue
            point, shorter = left[0], left[1:]
        trial, rows = _train_point(spec, point, shorter)
        if trial.state != optuna.trial.TrialState.COMPLETE:
            for short in shorter:  # no prefix to read them from: each trains on its own
                rows += _train_point(spec, short, [])[1]
        meter = trial.user_attrs.get(ATTR_METER) or "unknown"
        estimate = trial.user_attrs.get(ATTR_ENERGY_IS_ESTIMATE)
        header["meter"] = f"{meter} ({'estimate' if estimate else 'measured'})"
        write_rows(path, names, rows, header=header, notes=notes)
        notes = []
        session.trials.append(trial)
        session.derived += len({config_key(r, names) for r in rows}) - 1
        if on_trial is not None:
            on_trial(trial, session.already + session.recorded, session.planned)
    session.wall_s = time.perf_counter() - started
    if session.trials:
        write_rows(path, names, [], notes=[
            f"session: {_now()}, {session.recorded} configuration(s) recorded "
            f"({len(session.trials)} trained, {session.derived} read from a longer run's "
            f"prefix) in {session.wall_s:.1f} s wall time"])
    return session
