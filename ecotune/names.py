"""ecotune's vocabulary, defined once: the names a study file, the storage and the code share.

Everything else derives from these tuples and constants: the study file's pydantic
``Literal`` types (:mod:`ecotune.spec`), the sampler, data-set, model and meter factories
(which check at import that they implement exactly these names), and every reader and
writer of trial and study attributes. Importing this module costs nothing (no third-party
imports), so any layer may use it.
"""

from __future__ import annotations

__all__ = [
    "SAMPLERS", "DATASETS", "MODELS", "METERS", "METER_BACKENDS", "OPTIMIZERS",
    "BUDGET_SCHEDULES", "EARLY_STOPPING_ACTIONS", "EARLY_STOPPING_METHODS", "RUNG_ORDERS",
    "DEVICE_PATTERN",
    "LOW_PRECISION_DTYPES", "ENERGY_GPUS", "TEST_EVALUATIONS", "INFERENCE_MODES",
    "STOP_REASONS", "STOP_COMPLETED", "STOP_PATIENCE", "STOP_ENERGY_AWARE",
    "STOP_SUCCESSIVE_HALVING", "STOP_TRIAL_BUDGET",
    "ATTR_ENERGY", "ATTR_CPU_ENERGY", "ATTR_GPU_ENERGY", "ATTR_RAM_ENERGY", "ATTR_DURATION",
    "ATTR_CO2", "ATTR_METER", "ATTR_ENERGY_IS_ESTIMATE", "ATTR_ENERGY_SCOPE",
    "ATTR_ENERGY_DETAILS", "ATTR_ENERGY_ATTRIBUTION", "MEASUREMENT_ATTRS",
    "ATTRIBUTION_EXCLUSIVE", "ATTRIBUTION_SHARED", "ATTRIBUTION_UNSPLIT", "ENERGY_ATTRIBUTIONS",
    "ATTR_FAIL_REASON", "ATTR_TRAINING", "ATTR_INFERENCE", "ATTR_EARLY_STOPPING",
    "ATTR_SUCCESSIVE_HALVING", "ATTR_TEST_ACCURACY", "ATTR_ACTIVATION_DENSITY",
    "ATTR_EVALUATION_ENERGY", "ATTR_STOP", "ATTR_REPLAY_STOPPED", "ATTR_BUDGET_UNMET",
    "STUDY_ATTR_SPEC", "STUDY_ATTR_OBJECTIVES", "STUDY_ATTR_RULES",
    "STUDY_ATTR_REPEATS_PREFIX", "STUDY_ATTR_METER_NOISE", "CONFIRM_CANDIDATES",
    "CONSTRAINT_TRIAL_ENERGY", "CONSTRAINT_INFERENCE_ENERGY",
    "CONSTRAINT_INFERENCE_ENERGY_MEASURED",
    "check_implements",
]

#: Samplers by name (``[study] sampler``, ``--sampler``, ``ecotune.create_study``).
SAMPLERS = ("grid", "random", "tpe", "gp", "nsga2", "qmc", "skopt", "rung_tpe")
#: Data sets of the built-in trainer.
DATASETS = ("digits", "fake", "fashion_mnist", "mnist", "cifar10", "gtsrb")
#: Models of the built-in trainer.
MODELS = ("mlp", "cnn", "resnet18", "mobilenet_v2")
#: Energy backends, in ``auto``'s order of preference, and what a user may ask for.
METER_BACKENDS = ("rapl", "nvml", "codecarbon", "cputime")
METERS = ("auto", *METER_BACKENDS)
OPTIMIZERS = ("sgd", "adam", "adamw")
BUDGET_SCHEDULES = ("none", "linear", "exponential")
#: What energy-aware early stopping does with a stopped trial.
EARLY_STOPPING_ACTIONS = ("prune", "complete")
#: How trials are stopped early: a predicted dominated end, or successive halving's rungs.
EARLY_STOPPING_METHODS = ("predict", "successive_halving")
#: How successive halving orders a rung's trials within one non-dominated rank.
RUNG_ORDERS = ("crowding", "epsilon_net")
#: Where the built-in trainer trains (``[training] device``, ``ecotune run --device``).
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
#: Autocast type once low precision is on: ``auto`` is bfloat16 on the CPU, float16 on a GPU.
LOW_PRECISION_DTYPES = ("auto", "float16", "bfloat16")
#: Which GPUs a trial's energy covers: those it ``used``, or every ``visible`` one.
ENERGY_GPUS = ("used", "visible")
#: Which trials pay for a test-split evaluation (``[training] test_evaluation``): those on
#: the feasible front when they finish, every trial that trains to the end, or none.
TEST_EVALUATIONS = ("front", "all", "none")
#: A trained model's inference energy (``[energy] inference``): the hardware models'
#: ``estimate`` only, or also ``measured`` on the trial's device with its meter.
INFERENCE_MODES = ("estimate", "measured")

# Why a trial's training ended before its planned epochs (``StopTraining``'s reason, the
# ``stop_reason`` of the ``training`` attribute), or that it did not.
#: It trained for all its planned epochs.
STOP_COMPLETED = "completed"
#: Patience ran out (``[training] early_stopping_patience``). Studies written before
#: ecotune named it so recorded ``"early_stopping"``.
STOP_PATIENCE = "patience"
#: Energy-aware early stopping predicted a dominated end (``[early_stopping]``).
STOP_ENERGY_AWARE = "energy_aware_stop"
#: Successive halving's rung did not promote the trial.
STOP_SUCCESSIVE_HALVING = "successive_halving"
#: The next epoch would exceed the trial energy budget.
STOP_TRIAL_BUDGET = "trial_energy_budget"
STOP_REASONS = (STOP_COMPLETED, STOP_PATIENCE, STOP_ENERGY_AWARE, STOP_SUCCESSIVE_HALVING,
                STOP_TRIAL_BUDGET)

# Trial user attributes of a measurement window (ecotune.energy.Measurement.as_attrs):
# flat figures, each device only where it was measured.
ATTR_ENERGY = "energy_j"
ATTR_CPU_ENERGY = "cpu_energy_j"
ATTR_GPU_ENERGY = "gpu_energy_j"
ATTR_RAM_ENERGY = "ram_energy_j"
ATTR_DURATION = "duration_s"
ATTR_CO2 = "co2_g"
#: The backend(s) that measured, e.g. ``"rapl+nvml"``.
ATTR_METER = "energy_meter"
ATTR_ENERGY_IS_ESTIMATE = "energy_is_estimate"
#: ``"process"`` or ``"machine"`` (ecotune.energy.SCOPES).
ATTR_ENERGY_SCOPE = "energy_scope"
#: Other backends' figures, which backend measured which device, CPU share, warnings.
ATTR_ENERGY_DETAILS = "energy_details"
#: How the window's energy was attributed: one of :data:`ENERGY_ATTRIBUTIONS`.
ATTR_ENERGY_ATTRIBUTION = "energy_attribution"
#: The window was the only one open on its meter's counters: it got every reading whole.
ATTRIBUTION_EXCLUSIVE = "exclusive"
#: Other windows of the process were open on the same counters for part of it: each
#: reading was split among the windows open over its interval (docs/scaling.md).
ATTRIBUTION_SHARED = "shared"
#: Part of the figure is a whole-device reading booked whole to this process: it could not
#: be split with other processes using the device (CodeCarbon's RAPL or NVML reads, a GPU
#: read by power, RAPL without the machine's CPU time), so concurrent workers on one
#: machine each include the others' draw (docs/scaling.md).
ATTRIBUTION_UNSPLIT = "unsplit"
#: In order of precedence: a figure made of parts takes the last of theirs.
ENERGY_ATTRIBUTIONS = (ATTRIBUTION_EXCLUSIVE, ATTRIBUTION_SHARED, ATTRIBUTION_UNSPLIT)
MEASUREMENT_ATTRS = (ATTR_ENERGY, ATTR_CPU_ENERGY, ATTR_GPU_ENERGY, ATTR_RAM_ENERGY,
                     ATTR_DURATION, ATTR_CO2, ATTR_METER, ATTR_ENERGY_IS_ESTIMATE,
                     ATTR_ENERGY_SCOPE, ATTR_ENERGY_ATTRIBUTION, ATTR_ENERGY_DETAILS)

# Other trial user attributes.
#: Why a trial failed, in one line; written wherever a trial fails.
ATTR_FAIL_REASON = "fail_reason"
#: Training summary and per-epoch learning curve (built-in trainer and own loops alike).
ATTR_TRAINING = "training"
#: Inference-energy estimates of the trained model (ASIC, Eyeriss, per-layer profile).
ATTR_INFERENCE = "inference"
#: Energy-aware early stopping's predictions and where it stopped the trial.
ATTR_EARLY_STOPPING = "early_stopping"
#: Successive halving's rung points of the trial, by epoch.
ATTR_SUCCESSIVE_HALVING = "successive_halving"
#: Test-split accuracy of the trained model (never used by the search).
ATTR_TEST_ACCURACY = "test_accuracy"
#: Hidden-activation density on the test split (same pass as ``test_accuracy``); older
#: studies have it in the ``training`` attribute.
ATTR_ACTIVATION_DENSITY = "activation_density"
#: Energy of the trial's test-split evaluation, joules: measured in a window of its own,
#: not part of ``energy_j`` (the objective); search energy counts both.
ATTR_EVALUATION_ENERGY = "evaluation_energy_j"
#: Why a trial that ran its window ended before its planned epochs (own loops included).
ATTR_STOP = "stop_reason"
#: The epoch a replayed trial (ecotune.tabular) was stopped after.
ATTR_REPLAY_STOPPED = "replay_stopped_at_epoch"
#: Why the trained model's estimated inference energy ended above its ``energy_budget``
#: (the weight projection could not reach it), in one line; absent when it is within.
ATTR_BUDGET_UNMET = "energy_budget_unmet"

# Study user attributes.
#: The spec of the latest ``ecotune run`` of the study, as JSON data.
STUDY_ATTR_SPEC = "ecotune.spec"
#: The study's objectives and directions.
STUDY_ATTR_OBJECTIVES = "ecotune.objectives"
#: Early-stopping and budget settings every ``measure()`` on the study applies.
STUDY_ATTR_RULES = "ecotune.rules"
#: A trial's repeated measurements (``ecotune confirm``), under this prefix plus the
#: trial's number: Optuna refuses attribute writes on a finished trial
#: (``UpdateFinishedTrialError``), so they are study attributes keyed by the trial.
STUDY_ATTR_REPEATS_PREFIX = "ecotune.repeats."
#: The meter noise ``confirm`` chose its near-front candidates with, by meter.
STUDY_ATTR_METER_NOISE = "ecotune.meter_noise"
#: Which trials ``ecotune confirm`` repeats: the front, those whose energy interval
#: under the meter's noise could reach it, or every complete trial.
CONFIRM_CANDIDATES = ("front", "near-front", "all")

# Constraint names (Optuna's ``trial.set_constraint``: feasible when <= 0).
CONSTRAINT_TRIAL_ENERGY = "trial_energy_j"
CONSTRAINT_INFERENCE_ENERGY = "inference_energy_pj"
#: Measured inference energy per sample over its budget, joules.
CONSTRAINT_INFERENCE_ENERGY_MEASURED = "inference_energy_measured_j"


def check_implements(what: str, names: tuple[str, ...], implemented: object) -> None:
    """Raise at import time when a factory does not implement exactly ``names``.

    Example:
        >>> check_implements("model", ("a", "b"), {"a": 1})
        Traceback (most recent call last):
        ...
        RuntimeError: model names and implementations differ: missing ['b'], extra []
    """
    have = set(implemented)  # type: ignore[call-overload]
    if have != set(names):
        raise RuntimeError(f"{what} names and implementations differ: missing "
                           f"{sorted(set(names) - have)}, extra {sorted(have - set(names))}")
