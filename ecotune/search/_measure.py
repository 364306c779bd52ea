"""``measure(trial)``: a measurement window on an Optuna trial, with a per-epoch API.

Any training loop gets what the built-in trainer has (the built-in trainer is itself a
client of this API)::

    with ecotune.measure(trial, epochs=10) as m:
        for epoch in range(1, 11):
            train_one_epoch(model)
            m.report(epoch, evaluate(model))   # a learning-curve point, with energy
            if m.should_stop():                # energy-aware early stopping, budgets
                break
        m.record_model(model, sample_inputs)   # inference-energy estimates
    if m.on_front():                           # worth a test-split evaluation?
        with m.evaluation():                   # its own window: evaluation_energy_j
            trial.set_user_attr("test_accuracy", evaluate(model, test_split))
    return m.accuracy, m.energy_j             # energy_j: training and validation only

On a GPU the window waits for the device's queued work before each reading (start, every
``report``, stop), as Zeus does, so that a reading never comes before the work it should
include; it reads only the GPU the work uses (``device``), so work on the CPU is not
charged an idle GPU's draw (``gpus="visible"`` reads every visible GPU).

The rules a window applies (energy-aware early stopping, the per-trial, study and
inference energy budgets) travel with the study (:func:`ecotune.create_study`'s
``early_stopping`` and ``budgets``; a study file's sections), so every worker applies the
same ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ecotune import names
from ecotune.devices import cuda_indices, device_info, resolve_device, synchronizer
from ecotune.energy import Measurement, Meter, MeterWindow, co2_g_for, get_meter
from ecotune.epochs import EpochRecord, StopTraining, notify
from ecotune.execution import record_failure
from ecotune.rules import (
    TrialEnergyBudget,
    stored_rules,
    study_dominates,
    study_energy_j,
    study_metric_names,
)
from ecotune.spec import TrialRules, load_rules
from ecotune.storage import set_user_attrs, user_attr

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

    from ecotune.rules import EnergyAwareStopper

__all__ = ["measure", "MeasurementWindow", "EnergyOptions", "TrainingPlan"]


@dataclasses.dataclass(frozen=True)
class EnergyOptions:
    """What measures a window and where the work runs (``measure(trial, energy=...)``).

    Attributes:
        meter: ``"auto"``, a backend name or a :class:`~ecotune.energy.Meter`.
        country: ISO alpha-3 code of the grid, for the emissions figure.
        pue: power usage effectiveness of the site (>= 1), scales the emissions figure.
        device: where the work runs: ``"auto"`` (the first visible CUDA GPU if there is
            one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        gpus: ``"used"``: measure the GPU of ``device`` only (none for the CPU);
            ``"visible"``: every GPU this process sees, idle ones included.
        sync: waits for queued work before each reading (default: synchronise
            ``device``; the CPU needs nothing).
    """

    meter: str | Meter = "auto"
    country: str = "USA"
    pue: float = 1.0
    device: Any = "auto"
    gpus: str = "used"
    sync: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """What training is planned (``measure(trial, plan=...)``), so that the rules can
    project the rest of it: ``epochs`` (energy-aware early stopping and the trial energy
    budget), and the epochs of planned runtime decisions, so energy predictions price
    them in."""

    epochs: int | None = None
    freeze_at_epoch: int | None = None
    low_precision_at_epoch: int | None = None


_ENERGY_KEYS = frozenset(f.name for f in dataclasses.fields(EnergyOptions))
_PLAN_KEYS = frozenset(f.name for f in dataclasses.fields(TrainingPlan))


class MeasurementWindow:
    """What ``with measure(trial) as m`` gives.

    Inside the block: :meth:`report` after each epoch, :meth:`should_stop`,
    :meth:`energy_so_far_j`, :meth:`record_model`, :meth:`on_front`. After it: the
    figures (``energy_j``, ``duration_s``, ``co2_g``, ``meter``, ``is_estimate``), the
    ``accuracy`` last reported, ``curve`` and ``stop_reason``; :meth:`on_front` and
    :meth:`evaluation`, the test split's own window (``evaluation_energy_j``). Reading a
    figure inside the block is an error.
    """

    measurement: Measurement | None = None
    #: What the test split's evaluation window (:meth:`evaluation`) measured; None: none.
    evaluation_measurement: Measurement | None = None

    def __init__(self, meter: Meter, trial: optuna.trial.BaseTrial | None = None,
                 epochs: int | None = None, rules: TrialRules | None = None,
                 freeze_at_epoch: int | None = None,
                 low_precision_at_epoch: int | None = None,
                 sync: Callable[[], None] | None = None,
                 device: Mapping[str, Any] | None = None,
                 country: str = "USA", pue: float = 1.0) -> None:
        self._meter = meter
        self._handle: MeterWindow | None = None  # the training window on the meter
        self._co2 = (country, pue)
        #: Waits for the device's queued work; called before every meter reading.
        self.sync = sync or (lambda: None)
        #: The device the work runs on, as recorded in the ``training`` attribute.
        self.device = dict(device) if device is not None else None
        self._trial = trial
        self.epochs = epochs
        self.rules = rules or TrialRules()
        self._plan = (freeze_at_epoch, low_precision_at_epoch)
        self.curve: list[EpochRecord] = []
        self.stop_reason: str | None = None
        self.summary: dict[str, Any] = {}  # extra training facts for the `training` attribute
        self._watchers: list | None = None
        self._budget: TrialEnergyBudget | None = None
        self._stopper: EnergyAwareStopper | None = None
        self._t0_s = time.perf_counter()
        #: Trial attributes to write with the trial's next attribute write.
        self._unstored: dict[str, Any] = {}

    # -- inside the block -------------------------------------------------------------

    def energy_so_far_j(self) -> float:
        """Energy measured since the window opened, joules; the window stays open."""
        if self.measurement is not None:
            return self.measurement.energy_j
        self.sync()
        return self._lap().energy_j

    def _lap(self, exact: bool = False) -> Measurement:
        if self._handle is None:
            raise RuntimeError("the measurement window is not open")
        return self._handle.lap(exact)

    def _open(self) -> None:
        self._handle = self._meter.open()

    def _close(self) -> Measurement:
        assert self._handle is not None
        return self._with_co2(self._handle.close())

    def _with_co2(self, m: Measurement) -> Measurement:
        """The meter's energy with its emissions, computed once, here."""
        return dataclasses.replace(m, co2_g=co2_g_for(m.energy_j, *self._co2))

    def report(self, epoch: int, accuracy: float, *, train_loss: float | None = None,
               decisions: tuple[str, ...] = (), **extra: Any) -> None:
        """Record epoch ``epoch``'s validation ``accuracy`` on the learning curve, with the
        cumulative energy and time so far and any ``extra`` values (e.g. ``loss=0.3``),
        then apply the study's rules; :meth:`should_stop` says what they decided.

        Raises:
            ValueError: epochs out of order, a non-finite accuracy, or rules that need
                the planned epochs (``measure(trial, epochs=N)``) when none were given.
        """
        if self.measurement is not None:
            raise RuntimeError("report() after the `with measure(...)` block has ended")
        if self.curve and epoch <= self.curve[-1].epoch:
            raise ValueError(f"report(epoch={epoch}) after epoch {self.curve[-1].epoch}: "
                             "epochs must increase")
        if not math.isfinite(accuracy):
            raise ValueError(f"report(): accuracy {accuracy} is not finite")
        self.sync()  # the epoch's GPU work is part of this reading
        lap = self._lap(exact=epoch == self.epochs)
        record = EpochRecord(epoch, train_loss, float(accuracy),
                             time.perf_counter() - self._t0_s, lap.energy_j,
                             tuple(decisions), dict(extra))
        self.curve.append(record)
        if self.stop_reason is None:
            self.stop_reason = notify(self._epoch_watchers(), record)

    def should_stop(self) -> bool:
        """True once a rule of the study says training should end: energy-aware early
        stopping predicts the trial ends dominated, or the next epoch would take it past
        its energy budget. ``stop_reason`` says which."""
        return self.stop_reason is not None

    def __call__(self, record: EpochRecord) -> None:
        """The window as the built-in trainer's epoch watcher: report, then stop."""
        self.report(record.epoch, record.val_accuracy, train_loss=record.train_loss,
                    decisions=record.decisions, **record.extra)
        if self.should_stop():
            raise StopTraining(self.stop_reason)

    def record_model(self, model: nn.Module, sample_inputs: torch.Tensor,
                     measure_inference: bool = False) -> dict[str, Any]:
        """Estimate ``model``'s inference energy on ``sample_inputs`` (validation data,
        one batch) with both hardware models; store it on the trial at once (attribute
        ``inference``) and check the study's inference-energy budgets (constraints).
        Inside or after the block alike; after it, the estimate's own work is not
        counted as training energy. Returns the estimates (``asic_pj`` is the
        ``inference_energy`` objective, picojoules per inference).

        With ``measure_inference=True`` (after the block only) the model also runs on the
        sample for a fixed number of batches, in a meter window of its own, on the
        device it is on: key ``measured`` holds the energy per sample (joules, the
        ``inference_energy_measured_j`` objective), the latency per batch, the meter and
        whether its figure is an estimate (``ecotune.search`` ``measure_inference_energy``).

        Raises:
            ValueError: with ``measure_inference``, a sample the model cannot run on
                (nothing is stored).
            RuntimeError: ``measure_inference`` inside the block (its energy would be
                training energy, and the two windows would share the meter's readings).
        """
        return self._record_model(model, sample_inputs, measure_inference, store=True)

    def _record_model(self, model: nn.Module, sample_inputs: torch.Tensor,
                      measure_inference: bool, store: bool) -> dict[str, Any]:
        """:meth:`record_model`; with ``store=False`` the ``inference`` attribute waits
        in :attr:`_unstored` for the next write of the trial's attributes (the test
        evaluation's, or :meth:`_store_unstored`): one transaction fewer. The budgets'
        constraints are written at once either way."""
        from ecotune.energy.hardware import inference_estimates

        measured = None
        if measure_inference:
            if self.measurement is None:
                raise RuntimeError("record_model(measure_inference=True) inside the `with "
                                   "measure(...)` block: call it after the block, so the "
                                   "inference is measured in a window of its own")
            from ecotune.search._inference import measure_inference_energy

            self.sync()  # the training window's queued work is not the inference's
            measured = measure_inference_energy(model, sample_inputs, self._meter)
        estimates = inference_estimates(model, sample_inputs)
        self.inference = estimates if measured is None else {**estimates,
                                                             "measured": measured}
        if self._trial is not None:
            self._unstored[names.ATTR_INFERENCE] = self.inference
            if store:
                self._store_unstored()
            limit_pj = self.rules.budgets.inference_energy_pj
            if limit_pj is not None:
                self._trial.set_constraint(names.CONSTRAINT_INFERENCE_ENERGY,
                                           self.inference["asic_pj"] - limit_pj)
            limit_j = self.rules.budgets.inference_energy_measured_j
            if limit_j is not None and measured is not None:
                self._trial.set_constraint(names.CONSTRAINT_INFERENCE_ENERGY_MEASURED,
                                           measured["energy_per_sample_j"] - limit_j)
        return self.inference

    inference: dict[str, Any] | None = None

    def _store_unstored(self, failed: bool = False) -> None:
        """Write the attributes :meth:`_record_model` left for later, if any (at once
        where the trial ``failed``)."""
        if self._unstored and self._trial is not None:
            attrs, self._unstored = self._unstored, {}
            set_user_attrs(self._trial, attrs,
                           with_finished_state=self._last_write and not failed)

    def on_front(self, accuracy: float | None = None) -> bool:
        """Whether this trial, with ``accuracy`` (default: the accuracy last reported) and
        its other figures so far, is on its study's feasible front now: no complete,
        feasible trial of the study is as good in every objective and better in one.

        A trial dominated now can never be on the final front, so only a trial this says
        True of needs a test-split evaluation (:meth:`evaluation`). False for a trial a
        rule stopped (``stop_reason``) or that is infeasible (past its trial energy budget
        or, once :meth:`record_model` has run, its inference-energy budget). True without
        a study, and where an objective is one the window does not know (the window knows
        ``accuracy``, ``energy_j``, ``duration_s``, after the block ``co2_g``, after
        :meth:`record_model` ``inference_energy``, and ``inference_energy_measured_j``
        once measured). Inside the block the energy so far is
        a meter reading (:meth:`energy_so_far_j`). One storage read per call, of the
        trials finished since the last (:func:`ecotune.rules.study_dominates`).
        """
        if self.stop_reason is not None:
            return False
        energy_j = self.energy_so_far_j()  # one reading for both checks
        if not self._feasible(energy_j):
            return False
        study = getattr(self._trial, "study", None)
        objectives = (study_metric_names(study) or []) if study is not None else []
        if not objectives:
            return True
        import optuna

        accuracy = self.accuracy if accuracy is None else accuracy
        point = [self._figure(name, accuracy, energy_j) for name in objectives]
        if any(value is None for value in point):
            return True
        maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
        return not study_dominates(study, point, maximize)

    def _figure(self, name: str, accuracy: float | None, energy_j: float) -> float | None:
        """The trial's value of objective ``name`` as far as the window knows it."""
        closed = self.measurement
        if name == "accuracy":
            return accuracy
        if name == "energy_j":
            return energy_j
        if name == "duration_s":
            return closed.duration_s if closed else time.perf_counter() - self._t0_s
        if name == "co2_g":
            return closed.co2_g if closed else None
        if name == "inference_energy":
            return self.inference["asic_pj"] if self.inference else None
        if name == "inference_energy_measured_j":
            return self.inference_energy_measured_j
        return None

    def _feasible(self, energy_j: float) -> bool:
        """False once the window knows a budget makes the trial infeasible."""
        if self._budget is not None and self.curve and self._budget.constraint_j(
                energy_j, len(self.curve)) > 0:
            return False
        limit_pj = self.rules.budgets.inference_energy_pj
        if limit_pj is not None and self.inference is not None \
                and self.inference["asic_pj"] > limit_pj:
            return False
        limit_j = self.rules.budgets.inference_energy_measured_j
        measured_j = self.inference_energy_measured_j
        return not (limit_j is not None and measured_j is not None and measured_j > limit_j)

    @property
    def inference_energy_measured_j(self) -> float | None:
        """Measured inference energy per sample, joules (``record_model(...,
        measure_inference=True)``); None until measured."""
        measured = (self.inference or {}).get("measured")
        return None if measured is None else measured["energy_per_sample_j"]

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[dict[str, Any]]:
        """Measure the enclosed test-split evaluation in a window of its own, once per
        trial, after the ``with measure(...)`` block: its energy is stored on the trial as
        ``evaluation_energy_j`` (and :attr:`evaluation_energy_j`), not in ``energy_j``
        (the objective); the search's energy (the study energy budget, the report's
        hypervolume against search energy) counts both. Same meter, same device waits.
        If the work raises, the window is still closed and recorded, and the trial's
        ``fail_reason`` says why.

        Yields a dict: attributes put in it (e.g. ``test_accuracy``) are stored on the
        trial with ``evaluation_energy_j``, in the same transaction (the built-in trainer's
        ``inference`` attribute too).

        Raises:
            RuntimeError: inside the block (the training window is still open), or a
                second evaluation of the trial.
        """
        if self.measurement is None:
            raise RuntimeError("evaluation() inside the `with measure(...)` block: open it "
                               "after the block, so its energy is not training energy")
        if self._evaluated:
            raise RuntimeError("a trial's test split is evaluated once: evaluation() again")
        self._evaluated = True
        self.sync()  # the training window's queued work is not the evaluation's
        handle = self._meter.open()
        synced = False
        attrs: dict[str, Any] = {}
        try:
            yield attrs
            self.sync()
            synced = True
        except BaseException as err:
            if self._trial is not None and not _is_signal(err):
                record_failure(self._trial, err)
            raise
        finally:
            if not synced:
                _sync_quietly(self.sync)
            self.evaluation_measurement = self._with_co2(handle.close())
            if self._trial is not None:
                unstored, self._unstored = self._unstored, {}
                set_user_attrs(self._trial, {
                    **unstored, **attrs,
                    names.ATTR_EVALUATION_ENERGY: self.evaluation_measurement.energy_j},
                    with_finished_state=self._last_write and synced)

    _evaluated = False

    # -- after the block ---------------------------------------------------------------

    def _get(self) -> Measurement:
        if self.measurement is None:
            raise RuntimeError("the measurement window is still open: read its figures "
                               "after the `with measure(...)` block")
        return self.measurement

    @property
    def energy_j(self) -> float:
        """Energy of every device measured, joules: training and the validation each epoch
        reported (the ``energy_j`` objective); not the test evaluation's
        (:attr:`evaluation_energy_j`)."""
        return self._get().energy_j

    @property
    def evaluation_energy_j(self) -> float | None:
        """Energy of the test split's evaluation window (:meth:`evaluation`), joules; None
        where the trial had none."""
        m = self.evaluation_measurement
        return None if m is None else m.energy_j

    @property
    def duration_s(self) -> float:
        return self._get().duration_s

    @property
    def co2_g(self) -> float | None:
        return self._get().co2_g

    @property
    def meter(self) -> str:
        """Backend that produced the figures."""
        return self._get().meter

    @property
    def is_estimate(self) -> bool:
        """True where the figure is modelled rather than read from a hardware counter."""
        return self._get().is_estimate

    @property
    def accuracy(self) -> float | None:
        """The validation accuracy last reported (None: nothing reported)."""
        return self.curve[-1].val_accuracy if self.curve else None

    # -- rules -------------------------------------------------------------------------

    def _epoch_watchers(self) -> list:
        if self._watchers is None:
            self._watchers = []
            budget_j = self.rules.budgets.trial_energy_j
            if budget_j is not None:
                self._budget = TrialEnergyBudget(budget_j, self.epochs)
                self._watchers.append(self._budget)
            if self.rules.early_stopping.enabled \
                    and getattr(self._trial, "study", None) is not None:
                if self.epochs is None:
                    raise ValueError("this study stops trials early: pass the planned "
                                     "epochs, measure(trial, epochs=N)")
                es = self.rules.early_stopping
                if es.method == "successive_halving":
                    from ecotune.rules import SuccessiveHalving

                    self._watchers.append(SuccessiveHalving(
                        self._trial, self.epochs, es.min_epochs, es.reduction_factor,
                        es.brackets, es.rung_order))
                    return self._watchers
                from ecotune.rules import EnergyAwareStopper

                self._stopper = EnergyAwareStopper(self._trial.study, self.epochs, es.margin,
                                                   es.min_epochs, *self._plan)
                self._watchers.append(self._stopper)
        return self._watchers

    #: Whether the attributes of a block that ended without an error wait in
    #: :attr:`_unstored` for the trial's next attribute write (the built-in objective's
    #: test evaluation, or its :meth:`_store_unstored`), rather than being written at once.
    _defer_record = False
    #: Whether the evaluation's write (or :meth:`_store_unstored`'s) is the trial's last
    #: before its finished state (the built-in objective's): where no error came first,
    #: it then goes in the transaction that writes that state, where the storage allows
    #: it (after an error, at once: what was measured is stored whatever comes next).
    _last_write = False

    def _record(self, trial: optuna.trial.BaseTrial, defer: bool = False) -> None:
        """Store everything the window learned on ``trial`` (its attributes in one
        transaction where the storage allows it; with ``defer``, in the next one)."""
        assert self.measurement is not None
        attrs = self.measurement.as_attrs()
        if self.curve or self.summary:
            stop = (self.summary.pop("stop_reason", None) or self.stop_reason
                    or names.STOP_COMPLETED)
            device = {"device": self.device} if self.device is not None else {}
            attrs[names.ATTR_TRAINING] = {
                **device, **self.summary, "epochs_run": len(self.curve), "stop_reason": stop,
                "learning_curve": [r.as_attr() for r in self.curve]}
        if self._stopper is not None:
            attrs[names.ATTR_EARLY_STOPPING] = self._stopper.record()
        if defer:
            self._unstored.update(attrs)
        else:
            set_user_attrs(trial, attrs)
        if self._budget is not None and self.curve:
            trial.set_constraint(names.CONSTRAINT_TRIAL_ENERGY,
                                 self._budget.constraint_j(self.energy_j, len(self.curve)))


@contextlib.contextmanager
def measure(
    trial: optuna.trial.BaseTrial | None = None,
    energy: EnergyOptions | str | Meter | None = None,
    *,
    plan: TrainingPlan | None = None,
    rules: TrialRules | Mapping[str, Any] | None = None,
    **options: Any,
) -> Iterator[MeasurementWindow]:
    """Measure the enclosed work and record the figures on ``trial``'s user attributes.

    The attributes are ``energy_j`` (of this window only: a test-split evaluation after it,
    :meth:`MeasurementWindow.evaluation`, records ``evaluation_energy_j``),
    ``cpu_energy_j``, ``gpu_energy_j``, ``ram_energy_j`` (each device only where it was
    measured), ``duration_s``, ``co2_g``, ``energy_meter`` and
    ``energy_is_estimate``, ``energy_scope``, and where they apply ``energy_details``:
    ``alternatives_j`` (other backends' figures for the same window), ``sources``,
    ``cpu_share`` and ``warnings``. ``pue`` scales the emissions figure. If the work raises, the
    window is still closed and recorded, and the trial's ``fail_reason`` says why.

    With per-epoch reports (:meth:`MeasurementWindow.report`) the learning curve is stored
    in the ``training`` attribute, as the built-in trainer stores it; the study's rules
    (stored by :func:`ecotune.create_study`, or ``rules`` here) stop the trial through
    :meth:`MeasurementWindow.should_stop`. A trial that starts once the study's energy
    budget is spent ends at once as pruned (``optuna.TrialPruned``), with the reason, and
    ``study.optimize`` stops.

    Trials may run in threads (``study.optimize(..., n_jobs=k)``): their windows share
    the process's meters, each reading is split among the windows open over it, and
    ``energy_attribution`` says whether a trial's was (``shared``) or not
    (``exclusive``); see docs/scaling.md.

    Args:
        trial: the Optuna trial to record on (None: just measure).
        energy: how to measure (:class:`EnergyOptions`: meter, country, PUE, device,
            GPUs, sync); a meter name or :class:`~ecotune.energy.Meter` alone is
            ``EnergyOptions(meter=...)``.
        plan: the planned training (:class:`TrainingPlan`: epochs, runtime decisions).
        rules: the rules to apply instead of the study's own (``early_stopping``,
            ``budgets``).
        **options: the fields of :class:`EnergyOptions` and :class:`TrainingPlan` as
            keywords (``meter="cputime"``, ``epochs=10``, ...), as before they were
            grouped; each replaces the group's value.

    Raises:
        ecotune.devices.DeviceError: ``device`` names a GPU this machine lacks.
        TypeError: an unknown keyword.

    Example:
        >>> with measure(meter="cputime", epochs=2) as m:
        ...     for epoch in (1, 2):
        ...         _ = sum(range(100_000))
        ...         m.report(epoch, accuracy=0.5 + 0.1 * epoch)
        >>> m.meter, m.is_estimate, m.energy_j >= 0, m.accuracy, len(m.curve)
        ('cputime', True, True, 0.7, 2)
    """
    unknown = set(options) - _ENERGY_KEYS - _PLAN_KEYS
    if unknown:
        raise TypeError(f"measure() got unknown keyword(s) {sorted(unknown)}; expected "
                        f"energy=, plan=, rules= or one of {sorted(_ENERGY_KEYS | _PLAN_KEYS)}")
    if energy is None or isinstance(energy, (str, Meter)):
        energy = EnergyOptions() if energy is None else EnergyOptions(meter=energy)
    energy = dataclasses.replace(energy, **{k: v for k, v in options.items()
                                            if k in _ENERGY_KEYS})
    plan = dataclasses.replace(plan or TrainingPlan(),
                               **{k: v for k, v in options.items() if k in _PLAN_KEYS})
    co2_g_for(0.0, energy.country, energy.pue)  # an unknown country or bad PUE: before work
    study = getattr(trial, "study", None)  # a FixedTrial has none: no stored rules
    if rules is not None:
        rules = load_rules(rules)
    else:
        rules = stored_rules(study) if study is not None else TrialRules()
    if study is not None:
        _check_budget_left(trial, rules)
        _warn_if_objectives_swapped(trial)
    if energy.gpus not in names.ENERGY_GPUS:
        raise ValueError(f"gpus={energy.gpus!r}: expected one of {list(names.ENERGY_GPUS)}")
    torch_device = resolve_device(energy.device)
    meter = energy.meter
    meter_obj = meter if isinstance(meter, Meter) else get_meter(
        meter, cuda_indices(torch_device) if energy.gpus == "used" else None)
    window = MeasurementWindow(meter_obj, trial, plan.epochs, rules, plan.freeze_at_epoch,
                               plan.low_precision_at_epoch,
                               energy.sync or synchronizer(torch_device),
                               device_info(torch_device), energy.country, energy.pue)
    window.sync()  # work queued before the window is not its work
    window._open()
    window._t0_s = time.perf_counter()
    synced = False
    try:
        yield window
        window.sync()  # an error the GPU's queued work raises is the work's error
        synced = True
    except BaseException as err:
        if trial is not None and not _is_signal(err):
            record_failure(trial, err)
        raise
    finally:
        if not synced:
            _sync_quietly(window.sync)
        # Also when the work raised: the energy a failed trial spent is still spent.
        window.measurement = window._close()
        if trial is not None:
            window._record(trial, defer=synced and window._defer_record)


def _sync_quietly(sync: Callable[[], None]) -> None:
    """Wait for the device before the last reading of work that raised: the device's own
    error (the same one, again) must not keep the window from closing."""
    try:
        sync()
    except Exception:
        pass


def _is_signal(err: BaseException) -> bool:
    import optuna

    return isinstance(err, (optuna.TrialPruned, StopTraining))


def _check_budget_left(trial: optuna.trial.BaseTrial, rules: TrialRules) -> None:
    budget_j = rules.budgets.study_energy_j
    if budget_j is None:
        return
    spent_j = study_energy_j(trial.study)
    if spent_j >= budget_j:
        import optuna

        reason = (f"study energy budget spent ({spent_j:.1f} J of {budget_j:g} J): "
                  "the trial did not train")
        trial.set_user_attr(names.ATTR_STOP, reason)
        trial.study.stop()
        raise optuna.TrialPruned(reason)


# Studies already warned that their returned energy differs from the recorded one.
_warned_studies: set[tuple[int, str]] = set()


def _warn_if_objectives_swapped(trial: optuna.trial.BaseTrial) -> None:
    """Warn once per study when the trial before this one returned an ``energy_j`` value
    other than the energy its window recorded (objectives returned in the wrong order).
    One storage read per trial, whatever the study's size."""
    study = trial.study
    metric_names = study_metric_names(study) or []
    key = (id(study._storage), study.study_name)
    number = getattr(trial, "number", 0)
    if "energy_j" not in metric_names or key in _warned_studies or number == 0:
        return
    import optuna

    storage = study._storage
    try:
        previous = storage.get_trial(
            storage.get_trial_id_from_study_id_trial_number(study._study_id, number - 1))
    except KeyError:
        return
    if previous.state != optuna.trial.TrialState.COMPLETE or previous.values is None:
        return
    # user_attr: the energy comes with the bulk read; the rest of a stored trial's
    # attributes are fetched only where the energy does not match.
    recorded = user_attr(previous, names.ATTR_ENERGY)
    if recorded is None:
        return
    returned = previous.values[metric_names.index("energy_j")]

    def close(value: float) -> bool:
        return math.isclose(returned, value, rel_tol=1e-6, abs_tol=1e-9)

    if close(recorded):
        return
    # The energy at the last report is as right (a Trainer's search returns the values of
    # its last evaluation: HFEnergyCallback); swapped objectives match neither.
    curve = (previous.user_attrs.get(names.ATTR_TRAINING) or {}).get("learning_curve") or []
    if not (curve and close(curve[-1]["energy_j"])):
        _warned_studies.add(key)
        warnings.warn(
            f"trial {previous.number} returned energy_j = {returned:g} but its measurement "
            f"window recorded {recorded:g} J: return the objectives in the study's order "
            f"{metric_names} (e.g. `return accuracy, m.energy_j`)", UserWarning, stacklevel=4)
