"""Replay searches on a recorded table: real Optuna studies, real samplers, no training.

Each run is an in-memory study made by ``ecotune.create_study`` with the named sampler
and seed. Its objective samples the study file's search space exactly as the built-in
trainer's does, then looks the trial up in the table: a sampled value that is not in the
table's grid is read as the nearest grid value (in log space for ``log = true`` knobs),
the way a tabular benchmark answers a continuous sampler. The objective then walks the
recorded learning curve epoch by epoch, so that energy-aware early stopping (the same
``EnergyAwareStopper`` the trainer uses) and successive halving stop a trial exactly where
they would have stopped it live; a stopped trial costs the energy of its epochs so far
plus the recorded energy spent after training (in a table without
``evaluation_energy_j``, the test evaluation too). A trial that trains to the end also
pays its recorded ``evaluation_energy_j`` where the study file's
``[training] test_evaluation`` would have evaluated it: ``"front"`` when it is on the
replayed study's feasible front as it finishes, ``"all"`` always, ``"none"`` never. Its
search energy (the run's ``energy_j``) counts both, as live.

For speed (the replay is timed against bare Optuna, ``benchmarks/search_efficiency.py``)
:func:`replay` has the objective write nothing to a trial that trains to the end and
does that trial's accounting in its hypervolume history, in trial order
(:class:`ecotune.pareto.HypervolumeHistory`): the same answers, which
``tests/test_replay_exact.py`` holds it to.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import optuna

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import ATTR_ENERGY, ATTR_EVALUATION_ENERGY, ATTR_REPLAY_STOPPED
from ecotune.pareto import HypervolumeHistory
from ecotune.rules import search_energy_j, study_dominates
from ecotune.search import suggest_knobs
from ecotune.spec import CategoricalParam, IntParam, StudySpec, load_spec
from ecotune.tabular._pareto import table_reference
from ecotune.tabular._table import OBJECTIVE_COLUMNS, ConfigRecord, RecordedTable, TableError, cell

__all__ = ["Method", "ReplayRun", "TableObjective", "check_fits", "replay", "methods_for"]

@dataclass(frozen=True)
class Method:
    """One way of searching: a sampler (with options) and an early-stopping setting.

    ``stopping`` is ``"none"``, ``"predict"`` or ``"successive_halving"``; the other
    settings come from the spec's ``[early_stopping]`` section.
    """

    label: str
    sampler: str
    options: Mapping[str, Any] = field(default_factory=dict)
    stopping: str = "none"
    n_trials: int | None = None  # trials per run; None: replay's n_trials
    #: Settings replacing the spec's ``[early_stopping]`` ones (``min_epochs``, ``margin``,
    #: ``reduction_factor``, ``brackets``, ``on_stop``).
    early_stopping: Mapping[str, Any] = field(default_factory=dict)


def methods_for(spec: StudySpec, samplers: Sequence[str]) -> list[Method]:
    """A method per sampler name, stopping as the spec's ``[early_stopping]`` says.

    Example:
        >>> spec = load_spec({"study": {"name": "m"}, "early_stopping": {
        ...     "enabled": True, "method": "successive_halving"}})
        >>> [(m.label, m.stopping) for m in methods_for(spec, ["tpe", "grid"])]
        [('tpe+sh', 'successive_halving'), ('grid+sh', 'successive_halving')]
    """
    stopping = spec.early_stopping.method if spec.early_stopping.enabled else "none"
    suffix = {"none": "", "predict": "+es", "successive_halving": "+sh"}[stopping]
    return [Method(f"{s}{suffix}", s, {}, stopping) for s in samplers]


@dataclass
class ReplayRun:
    """One replayed study: per finished trial (by number), its search energy and the
    hypervolume ratio (to the table's front) of the complete trials so far."""

    label: str
    seed: int
    energy_j: np.ndarray  # search energy of each trial (training and test evaluation)
    hypervolume_ratio: np.ndarray  # after each trial
    states: list[str]
    wall_s: float
    values: list[tuple[float, ...] | None] = field(default_factory=list)
    #: CPU time of this process over the same span as ``wall_s`` (what a shared machine's
    #: other work inflates least); NaN where not measured.
    cpu_s: float = math.nan

    @property
    def cumulative_energy_j(self) -> np.ndarray:
        return np.cumsum(self.energy_j)


class _Snap:
    """Maps a sampled knob value onto the table's grid for that knob."""

    def __init__(self, name: str, param: Any, cells: Sequence[str]) -> None:
        self.name = name
        self.by_cell = {c: c for c in cells}
        self.numeric = not isinstance(param, CategoricalParam)
        # Each cell as the knob value it was recorded with (what the live trial trained).
        choices = {} if self.numeric else {cell(c): c for c in param.choices}
        parse = int if isinstance(param, IntParam) else float
        self.value_of = {c: parse(c) if self.numeric else choices.get(c, c) for c in cells}
        if self.numeric:
            values = np.array([float(c) for c in cells])
            self.cells = [cells[i] for i in np.argsort(values)]
            values = np.sort(values)
            self.log = bool(param.log) and bool((values > 0).all())
            # Plain floats, searched by bisection: a few numpy calls per knob and trial
            # were most of what a replayed random-search trial cost beyond Optuna's own.
            self.positions = (np.log(values) if self.log else values).tolist()
        # The cells that are how the table writes their own value: a value equal to one
        # of those is written as that very cell, so it is found without writing it.
        self.exact = {v: c for c, v in self.value_of.items()
                      if self.numeric and cell(v) == c}

    def __call__(self, value: Any) -> str:
        if value in self.exact:
            return self.exact[value]
        if not self.numeric:
            text = cell(value)
            if text not in self.by_cell:
                raise TableError(f"knob {self.name}: value {value!r} is not in the table")
            return text
        # A number whose text is a cell's is that cell's value, so in ``exact``: what is
        # left is read as the nearest grid value.
        x = math.log(value) if self.log else float(value)
        return self.cells[_nearest(self.positions, x)]


def _nearest(positions: list[float], x: float) -> int:
    """The index of the position nearest ``x`` in the ascending ``positions``, the first
    of equals: ``argmin(abs(positions - x))`` (0 where ``x`` is not finite), by
    bisection."""
    if not math.isfinite(x):
        return 0  # every distance is inf or NaN, and argmin answers the first
    i = bisect_left(positions, x)
    if i == len(positions) or (i > 0 and x - positions[i - 1] <= positions[i] - x):
        i -= 1  # the left neighbour is as near (a tie goes to the first)
    while i > 0 and positions[i - 1] == positions[i]:
        i -= 1
    return i


class TableObjective:
    """The replay objective: suggest the knobs, look the configuration up, walk its curve.

    Args:
        table: the recorded table.
        spec: the study (search space, objectives, ``[early_stopping]`` settings).
        stopping: ``"none"``, ``"predict"`` or ``"successive_halving"``.
    """

    def __init__(self, table: RecordedTable, spec: StudySpec, stopping: str = "none", *,
                 defer_accounting: bool = False) -> None:
        self.table, self.spec, self.stopping = table, spec, stopping
        if stopping not in ("none", "predict", "successive_halving"):
            raise ValueError(f"unknown stopping {stopping!r}; expected none, predict or "
                             "successive_halving")
        unknown = [o for o in spec.study.objectives if o not in OBJECTIVE_COLUMNS]
        if unknown:
            raise TableError(f"objective {unknown[0]!r} cannot be replayed; a table answers "
                             f"{list(OBJECTIVE_COLUMNS)}")
        if stopping != "none" and "inference_energy" in spec.study.objectives:
            raise TableError("a table holds the inference energy of fully trained models "
                             "only: replay early stopping without that objective")
        if stopping != "none" and not {"accuracy", "energy_j"} <= set(spec.study.objectives):
            raise TableError("early stopping needs the objectives accuracy and energy_j")
        if list(spec.search_space) != table.knobs:
            raise TableError(f"the table was recorded over the knobs {table.knobs}, the study "
                             f"searches {list(spec.search_space)}")
        cells: dict[str, list[str]] = {k: [] for k in table.knobs}
        for key in table.configs:
            for k, c in zip(table.knobs, key):
                if c not in cells[k]:
                    cells[k].append(c)
        self.snaps = [_Snap(k, spec.search_space[k], cells[k]) for k in table.knobs]
        self._finals: dict[int, tuple[float, ...]] = {}  # by id() of a record of the table
        self._deferred: weakref.WeakKeyDictionary[optuna.Study, dict[int, Deferred]] | None = (
            weakref.WeakKeyDictionary() if defer_accounting else None)

    def lookup(self, knobs: Mapping[str, Any]) -> ConfigRecord:
        """The table's record for ``knobs`` (each value snapped to the nearest grid value).

        Raises:
            TableError: the table lacks that configuration.
        """
        key = tuple(snap(knobs[snap.name]) for snap in self.snaps)
        try:
            return self.table.configs[key]
        except KeyError:
            raise TableError(f"configuration {dict(zip(self.table.knobs, key))} is not in "
                             "the table") from None

    def _stop_epoch(self, trial: optuna.Trial, record: ConfigRecord) -> int | None:
        """The epoch after which the replayed stopping rule ends training (None: never):
        the same watcher the live trainer's measurement window runs, fed the recorded
        curve."""
        settings = self.spec.early_stopping
        # The live rules plan for the trial's own configuration (its knobs applied): the
        # epochs configured, not those run (patience may have ended the recording sooner),
        # and its searched runtime decisions.
        training = self.spec._with_knobs({s.name: s.value_of[record.knobs[s.name]]
                                          for s in self.snaps})[1]
        planned = training.epochs
        if self.stopping == "predict":
            from ecotune.rules import EnergyAwareStopper

            watch = EnergyAwareStopper(trial.study, planned, settings.margin,
                                       settings.min_epochs, training.freeze_at_epoch,
                                       training.low_precision_at_epoch)
        else:
            from ecotune.rules import SuccessiveHalving

            watch = SuccessiveHalving(trial, planned, settings.min_epochs,
                                      settings.reduction_factor, settings.brackets,
                                      settings.rung_order)
        for e, acc, j, s in zip(record.epochs.tolist(), record.val_accuracy.tolist(),
                                record.energy_j.tolist(), record.elapsed_s.tolist()):
            try:
                watch(EpochRecord(e, None, acc, s, j))
            except StopTraining:
                return e if e < planned else None
        return None

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        record = self.lookup(suggest_knobs(trial, self.spec))
        if record.failed:
            trial.set_user_attr(ATTR_ENERGY, record.final_energy_j)
            raise RuntimeError("the recorded trial failed")
        stopped = None if self.stopping == "none" else self._stop_epoch(trial, record)
        if stopped is None:  # trained to the end: the record's own figures
            result = self._final_values(record)
            if self._deferred is not None:  # the caller does the accounting, in order
                self._deferred.setdefault(trial.study, {})[trial.number] = Deferred(
                    result, record.final_energy_j, record.evaluation_energy_j)
                return result
            trial.set_user_attr(ATTR_ENERGY, record.final_energy_j)
            if self._evaluates(trial, result):
                trial.set_user_attr(ATTR_EVALUATION_ENERGY, record.evaluation_energy_j)
            return result
        # Stopped after epoch ``stopped``: its figures there; never test-evaluated.
        values = self._values(record)
        i = stopped - 1
        values["accuracy"] = float(record.val_accuracy[i])
        values["energy_j"] = float(record.energy_j[i]) + record.tail_energy_j
        if "duration_s" in values:
            values["duration_s"] -= float(record.elapsed_s[-1] - record.elapsed_s[i])
        trial.set_user_attr(ATTR_ENERGY, values["energy_j"])
        trial.set_user_attr(ATTR_REPLAY_STOPPED, stopped)
        if self.spec.early_stopping.on_stop == "prune":
            raise optuna.TrialPruned(f"stopped after epoch {stopped}")
        return tuple(values[name] for name in self.spec.study.objectives)

    def _values(self, record: ConfigRecord) -> dict[str, float]:
        """The record's final figures, by objective name."""
        finals = record.finals
        values = {name: float(finals[column]) for name, column in OBJECTIVE_COLUMNS.items()
                  if column in finals and finals[column] is not None}
        values["accuracy"] = float(finals["accuracy"])
        values["energy_j"] = record.final_energy_j
        return values

    def _final_values(self, record: ConfigRecord) -> tuple[float, ...]:
        """What a trial that trains ``record`` to the end returns; worked out once per
        configuration, not per trial."""
        key = id(record)
        if key not in self._finals:
            values = self._values(record)
            self._finals[key] = tuple(values[name] for name in self.spec.study.objectives)
        return self._finals[key]

    def deferred(self, study: optuna.Study) -> dict[int, Deferred]:
        """With ``defer_accounting``, the trials of ``study`` that trained to the end, by
        number, whose energy attributes and test-evaluation decision the objective left
        to its caller (forgotten here once read): it writes nothing to such a trial.
        The caller (the replay's :func:`_history`) decides them in trial order against
        the front of the trials before, where the objective would have asked the study
        for the trials finished so far: the same trials where the study runs one trial at
        a time, as a replay's does, without two attribute writes and a storage read per
        trial."""
        return self._deferred.pop(study, {}) if self._deferred is not None else {}

    def _evaluates(self, trial: optuna.Trial, values: tuple[float, ...]) -> bool:
        """Whether the live trial would have evaluated the test split (a trial that
        trained to the end; ``[training] test_evaluation``): with ``"front"``, whether no
        complete, feasible trial of the study dominates it."""
        setting = self.spec.training.test_evaluation
        if setting != "front":
            return setting == "all"
        study = trial.study
        maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
        return not study_dominates(study, values, maximize)


class Deferred(NamedTuple):
    """A trial that trained to the end, as :meth:`TableObjective.deferred` leaves it."""

    values: tuple[float, ...]  # what the objective returned
    energy_j: float  # the recorded training energy (the ``energy_j`` attribute live)
    evaluation_energy_j: float  # the recorded test evaluation's, paid where evaluated


def _history(study: optuna.Study, reference: Sequence[float], reference_hv: float,
             maximize: Sequence[bool], deferred: Mapping[int, Deferred] | None = None,
             test_evaluation: str = "front",
             ) -> tuple[np.ndarray, np.ndarray, list[str], list]:
    """Per trial (by number): its search energy, the hypervolume ratio of the complete,
    feasible trials so far (:class:`ecotune.pareto.HypervolumeHistory`, what
    :func:`~ecotune.pareto.hypervolume_history` computes), its state and values.

    A trial in ``deferred`` pays its test evaluation as ``test_evaluation`` says: with
    ``"front"`` where no complete, feasible trial before it dominates it."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    deferred = deferred or {}
    history = HypervolumeHistory(maximize, reference)
    energies, volumes = [], []
    for t in trials:
        waiting = deferred.get(t.number)
        if waiting is None:  # failed, stopped, or not deferred: its attributes say
            energies.append(search_energy_j(t) or 0.0)
        else:
            evaluated = test_evaluation == "all" or (
                test_evaluation == "front" and not history.front.dominates(waiting.values))
            # As search_energy_j adds the attributes the objective would have written.
            energies.append((float(waiting.energy_j or 0.0)
                             + float((waiting.evaluation_energy_j if evaluated else None)
                                     or 0.0)) or 0.0)
        volumes.append(history.add(t))
    volume = np.asarray(volumes, dtype=float)
    ratios = volume / reference_hv if reference_hv > 0 else np.full(len(trials), math.nan)
    return (np.asarray(energies, dtype=float), ratios, [t.state.name for t in trials],
            [tuple(t.values) if t.values is not None else None for t in trials])


def check_fits(table: RecordedTable, spec: StudySpec) -> None:
    """Refuse a table recorded from another data set, model, training or search space.

    Raises:
        TableError: naming the first section that differs.
    """
    from ecotune.spec import SpecError, load_spec
    from ecotune.tabular._record import table_spec

    sections = ("search_space", "data", "model", "training")
    mine = table_spec(spec)
    try:  # the header's sections as today's spec reads them (defaults and dumps change)
        # A table recorded before [training] seed existed trained with its study seed.
        study = {"name": spec.study.name, "seed": table.spec.get("study", {}).get("seed")}
        theirs = table_spec(load_spec({"study": study,
                                       **{s: table.spec[s] for s in sections
                                          if s in table.spec}}))
    except SpecError as err:
        raise TableError(f"the table's '# spec:' header is not a valid study: {err}") from None
    for section in sections:
        if json.loads(json.dumps(mine[section])) != json.loads(json.dumps(theirs[section])):
            raise TableError(f"the table was recorded with another {section} section than the "
                             "study file's: replay it with the study file it was recorded "
                             "from (its '# spec:' header line)")


def _with_stopping(spec: StudySpec, method: Method) -> StudySpec:
    settings = dict(method.early_stopping)
    if method.stopping != "none":  # the section then says which rule, as live
        settings.setdefault("method", method.stopping)
    return spec.with_settings(early_stopping=settings)


def replay(table: RecordedTable, spec: StudySpec | Mapping[str, Any] | str,
           methods: Sequence[Method], repeats: int = 1, n_trials: int | None = None,
           on_run: Any = None) -> dict[str, list[ReplayRun]]:
    """Replay each method ``repeats`` times (seeds ``study.seed + 0, 1, ...``).

    Args:
        table: the recorded table (its front is the reference).
        spec: the study; its search space must be the table's knobs.
        methods: what to replay.
        repeats: runs per method, each with its own seed.
        n_trials: trials per run (default: the number of configurations in the table).
        on_run: called with each finished :class:`ReplayRun`.

    Returns:
        The runs, by method label.

    Raises:
        TableError: the table does not fit the spec; ValueError: bad counts or samplers.
    """
    from ecotune.comparison import run_name
    from ecotune.search import create_study

    spec = load_spec(spec)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    n_trials = n_trials if n_trials is not None else len(table.configs)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 (got {n_trials})")
    if not table.configs:
        raise TableError("the table holds no recorded configuration")
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"a method label is used twice: {labels}")
    check_fits(table, spec)
    reference, reference_hv, maximize = table_reference(table, spec.study.objectives)
    seed0 = spec.study.seed or 0
    objectives = {m.label: TableObjective(table, _with_stopping(spec, m), m.stopping,
                                          defer_accounting=True)
                  for m in methods}
    grid = spec.grid() if any(m.sampler == "grid" for m in methods) else None
    runs: dict[str, list[ReplayRun]] = {}
    for method in methods:
        for r in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            with _quiet():
                study = create_study(run_name(spec.study.name, method.label, r), storage=None,
                                     sampler=method.sampler, objectives=spec.study.objectives,
                                     seed=seed0 + r,
                                     grid=grid if method.sampler == "grid" else None,
                                     sampler_options=dict(method.options))
                study.optimize(objectives[method.label],
                               n_trials=method.n_trials or n_trials,
                               catch=(RuntimeError,))
            objective = objectives[method.label]
            energy, ratio, states, values = _history(
                study, reference, reference_hv, maximize, objective.deferred(study),
                objective.spec.training.test_evaluation)
            run = ReplayRun(method.label, seed0 + r, energy, ratio, states,
                            time.perf_counter() - started, values,
                            time.process_time() - started_cpu)
            runs.setdefault(method.label, []).append(run)
            if on_run is not None:
                on_run(run)
    return runs


class _quiet:
    """Optuna's per-trial log lines and the GP sampler's fallback warning, silenced."""

    def __enter__(self) -> None:
        import warnings

        self._level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        optuna.logging.set_verbosity(self._level)
