"""The built-in trainer as an Optuna objective: sample knobs, train inside a measurement
window (the same per-epoch API own training loops use), return the study's objectives.

The window records the learning curve, applies the study's rules (energy-aware early
stopping, budgets) and stores the inference estimates; this module adds what only the
built-in trainer knows (test accuracy, sparsity, model size).

The test split is evaluated after training, in the window's evaluation window of its own
(``evaluation_energy_j``, not the ``energy_j`` objective), and only where
``[training] test_evaluation`` says: ``"front"`` (default) for a trial on the study's
feasible front when it finishes (:meth:`~ecotune.MeasurementWindow.on_front`; the model is
still in memory, and a trial dominated then can never reach the final front), ``"all"`` for
every trial that trains to the end, ``"none"`` never. A trial a rule stopped is never
evaluated."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

import optuna

from ecotune.data import DataSplits, load_data
from ecotune.devices import cuda_indices, job_device, resolve_device
from ecotune.energy import Meter, get_meter
from ecotune.energy.hardware import INFERENCE_SAMPLE
from ecotune.execution import job_index
from ecotune.names import (
    ATTR_ACTIVATION_DENSITY,
    ATTR_BUDGET_UNMET,
    ATTR_TEST_ACCURACY,
    STOP_ENERGY_AWARE,
    STOP_SUCCESSIVE_HALVING,
)
from ecotune.search._knobs import suggest_knobs
from ecotune.search._measure import EnergyOptions, MeasurementWindow, TrainingPlan, measure
from ecotune.spec import StudySpec
from ecotune.training import TrainConfig, TrainResult, evaluate_test, train

__all__ = ["BuiltinObjective", "evaluates_test", "suggest_knobs", "train_config"]

#: ``BuiltinObjective(after_training=...)``: ``(trial, result, data, energy options)``.
AfterTraining = Callable[[optuna.Trial, TrainResult, DataSplits, EnergyOptions], None]


def train_config(spec: StudySpec, knobs: dict[str, Any]) -> TrainConfig:
    """The spec's training settings with the sampled ``knobs`` applied."""
    model, training = spec._with_knobs(knobs)
    # The seed is train()'s argument, not a knob of the run it configures; test evaluation
    # is the objective's decision, after training.
    return TrainConfig(model=model.name, width=model.width,
                       **training.model_dump(exclude={"seed", "test_evaluation"}))


class BuiltinObjective:
    """Objective for ``study.optimize`` that trains the spec's model on the spec's data.

    Every trial trains from the same seed (``[training] seed``: default the study's seed,
    else 0), whichever worker runs it, so trials differ by their knobs, not by their
    initial weights or batch order. Why a trial failed is
    recorded by the measurement window (and by the worker around it).

    A trial that ends without an error has its attributes (energy, learning curve, test
    evaluation, estimates) written on relational storage in the transaction of its
    finished state, Optuna's ``tell`` (``study.optimize`` tells at once); until then
    they are visible in this process only. A trial that raised stores them at once.
    """

    def __init__(self, spec: StudySpec, meter: Meter | None = None,
                 keep_states_at: Collection[int] = (),
                 after_training: AfterTraining | None = None) -> None:
        self.spec = spec
        #: A meter to measure with instead of ``[energy] meter`` (e.g. one that also
        #: reads other backends over the same windows, as benchmarks/gpu.py does).
        self.meter = meter
        #: Epochs whose weights ``train`` keeps (``TrainResult.states``).
        self.keep_states_at = tuple(keep_states_at)
        #: Called with ``(trial, result, data, energy)`` once the trial's windows are
        #: closed (a recording derives its shorter runs there).
        self.after_training = after_training

    def warm_up(self) -> None:
        """Pay the process's one-off costs before the first trial rather than inside it:
        loading the data set (and its libraries) and the meter's hardware probe."""
        spec = self.spec
        load_data(spec.data.name, **spec.data.loader_options())
        if self.meter is not None:
            self.meter.warm_up()
            return
        # The meter the trials will use: the one for the GPUs of the trainer's device.
        device = resolve_device(spec.training.device)
        gpus = cuda_indices(device) if spec.energy.gpus == "used" else None
        get_meter(spec.energy.meter, gpus).warm_up()

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        spec = self.spec
        config = train_config(spec, suggest_knobs(trial, spec))
        # Trials at once (n_jobs) on a machine with several GPUs: a GPU each.
        config = dataclasses.replace(config, device=job_device(config.device, job_index()))
        data = load_data(spec.data.name, **spec.data.loader_options())
        energy = EnergyOptions(meter=self.meter or spec.energy.meter,
                               country=spec.energy.country, pue=spec.energy.pue,
                               device=config.device, gpus=spec.energy.gpus)
        plan = TrainingPlan(config.epochs, config.freeze_at_epoch,
                            config.low_precision_at_epoch)
        with measure(trial, energy, plan=plan) as m:
            # The window's attributes wait for the trial's next write (the test
            # evaluation's, or the one in `finally` below), and that one, the trial's
            # last, goes with its finished state: two transactions fewer.
            m._defer_record = m._last_write = True
            result = train(data, config, seed=spec.training.seed, on_epoch=m, test=False,
                           keep_states_at=self.keep_states_at)
            m.summary.update(_training_summary(result))
        failed = True
        try:
            if result.budget_unmet is not None:  # why the trial is over its budget
                m._unstored[ATTR_BUDGET_UNMET] = result.budget_unmet
            # Outside the window: estimating inference energy is not training energy. Its
            # attribute is written with the window's and the test evaluation's (one
            # transaction), or with the window's alone.
            m._record_model(result.model, _inference_sample(result, data),
                            spec.energy.inference == "measured", store=False)
            if m.stop_reason in (STOP_ENERGY_AWARE, STOP_SUCCESSIVE_HALVING) \
                    and spec.early_stopping.on_stop == "prune":
                raise optuna.TrialPruned(
                    f"predicted final point dominated by the front at epoch {len(m.curve)}"
                    if m.stop_reason == STOP_ENERGY_AWARE else
                    f"successive halving: not in the top at the rung of epoch {len(m.curve)}")
            if evaluates_test(spec.training.test_evaluation, m, result.val_accuracy):
                with m.evaluation() as attrs:  # stored with the evaluation's energy
                    result = evaluate_test(result, data)
                    attrs[ATTR_TEST_ACCURACY] = result.test_accuracy
                    attrs[ATTR_ACTIVATION_DENSITY] = result.activation_density
            failed = False
        finally:
            m._store_unstored(failed)  # no evaluation (or it never opened): without it
        if self.after_training is not None:
            self.after_training(trial, result, data, energy)
        values = {
            "accuracy": result.val_accuracy,
            "energy_j": m.energy_j,
            "duration_s": m.duration_s,
            "co2_g": m.co2_g,
            "inference_energy": m.inference["asic_pj"] if m.inference else None,
            "inference_energy_measured_j": m.inference_energy_measured_j,
        }
        return tuple(float(values[name]) for name in spec.study.objectives)


def evaluates_test(setting: str, window: MeasurementWindow, accuracy: float) -> bool:
    """Whether a trial whose training window has closed evaluates the test split, under
    ``[training] test_evaluation = setting``, with ``accuracy`` its accuracy objective.

    Example:
        >>> with measure(meter="cputime") as m:
        ...     m.report(1, 0.8)
        >>> [evaluates_test(s, m, 0.8) for s in ("front", "all", "none")]
        [True, True, False]
    """
    if setting == "none" or window.stop_reason is not None:
        return False
    return setting == "all" or window.on_front(accuracy)


def _training_summary(result: TrainResult) -> dict[str, Any]:
    """What only the built-in trainer knows, stored with the learning curve (one
    attribute: each costs a storage transaction)."""
    return {
        "val_accuracy": result.val_accuracy,
        "n_params": result.n_params,
        "macs": result.macs,
        "budget_energy_ratio": result.budget_energy_ratio,
        "low_precision_dtype": result.low_precision_dtype,
        "stop_reason": result.stop_reason,
    }


def _inference_sample(result: TrainResult, data: DataSplits):
    """The validation inputs the inference estimates run on (masked like training's)."""
    sample = data.x_val[:INFERENCE_SAMPLE]
    return sample if result.input_mask is None else sample * result.input_mask
