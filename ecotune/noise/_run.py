"""``confirm(study, repeats=K)``: re-run chosen trials of a built-in-trainer study K times
with the same knobs and training seed, through the same trainer and meter, and store each
repeat beside the trial it repeats (:mod:`ecotune.noise._stored`)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from ecotune.energy import Meter, MeterError, get_meter
from ecotune.names import (
    ATTR_TRAINING,
    CONFIRM_CANDIDATES,
    STOP_ENERGY_AWARE,
    STOP_SUCCESSIVE_HALVING,
    STOP_TRIAL_BUDGET,
    STUDY_ATTR_METER_NOISE,
    STUDY_ATTR_SPEC,
)
from ecotune.noise._candidates import candidate_trials, complete_trials
from ecotune.noise._noise import DEFAULT_WINDOWS, MeterNoise, meter_noise
from ecotune.noise._stored import store_repeats, stored_repeats
from ecotune.spec import StudySpec

__all__ = ["confirm", "ConfirmResult", "ConfirmError", "NotConfirmable", "study_noise",
           "repeat_trial"]

#: Stops a rule made: a repeat trains the epochs the original trained, no rule applies.
_RULE_STOPS = (STOP_ENERGY_AWARE, STOP_SUCCESSIVE_HALVING, STOP_TRIAL_BUDGET)

#: Called after each repeat with (trial number, repeat index from 1, the repeat's record).
OnRepeat = Callable[[int, int, Mapping[str, Any]], None]


class ConfirmError(ValueError):
    """A confirm that cannot start (bad arguments, no trial to confirm); nothing stored."""


class NotConfirmable(ConfirmError):
    """The study was not run by the built-in trainer: ecotune cannot re-run its trials."""


@dataclasses.dataclass
class ConfirmResult:
    """What one ``confirm`` call did: which trials it chose, how many repeats it ran
    (``repeats_run``) and found stored (``repeats_kept``), and what its own repeats cost."""

    candidates: list[int]
    repeats_run: int
    repeats_kept: int
    energy_j: float
    duration_s: float
    meter: str
    noise: MeterNoise | None
    #: Trials whose repeat reached another validation accuracy than the original.
    accuracy_differs: list[int]


def confirm(study: optuna.Study, repeats: int = 3, candidates: str = "front",
            cooldown_s: float = 0.0, meter: Meter | None = None,
            noise: MeterNoise | None = None, noise_windows: int = DEFAULT_WINDOWS,
            on_repeat: OnRepeat | None = None) -> ConfirmResult:
    """Bring each chosen trial of ``study`` to ``repeats`` repeats of its training.

    Args:
        repeats: repeats per trial, besides the original measurement (>= 1). Repeats
            already stored count: an interrupted confirm continues where it stopped.
        candidates: ``"front"``, ``"near-front"`` (trials whose measured objectives
            could reach the front within the meter's noise) or ``"all"``.
        cooldown_s: seconds to wait before each repeat (a GPU heated by the previous
            run draws more).
        meter: a meter to measure with instead of the study file's ``[energy] meter``.
        noise: the meter's noise for ``"near-front"``; default the one stored in the
            study by an earlier confirm, else measured now (``noise_windows`` windows of
            :func:`~ecotune.noise.fixed_workload`, 0.3 s to 2 s each here) and stored.

    The trials' values stay as Optuna stored them; repeats create no trial.

    Raises:
        ConfirmError: bad arguments or no complete trial (before anything is stored).
        NotConfirmable: the study holds no ``ecotune.spec`` (an own training loop).
    """
    _check_arguments(repeats, candidates, cooldown_s)
    spec = _spec_of(study)
    if not complete_trials(study):
        raise ConfirmError(f"study {study.study_name!r} has no complete trial to confirm")
    meter_obj = meter or _meter_of(spec)
    label = meter.name if meter is not None else spec.energy.meter
    if candidates == "near-front" and noise is None:
        noise = study_noise(study, label, meter_obj, noise_windows)
    noise_cv = None if noise is None else {"energy_cv": _finite(noise.energy_cv),
                                           "duration_cv": _finite(noise.duration_cv)}
    chosen = candidate_trials(study, candidates, noise_cv)
    records = stored_repeats(study)
    result = ConfirmResult([t.number for t in chosen], 0, 0, 0.0, 0.0, label, noise, [])
    ran_before = False
    for trial in chosen:
        done = list(records.get(trial.number, {}).get("repeats", []))[:repeats]
        result.repeats_kept += len(done)
        while len(done) < repeats:
            if ran_before and cooldown_s > 0:
                time.sleep(cooldown_s)
            repeat = repeat_trial(spec, trial, meter_obj)
            repeat["cooldown_s"] = cooldown_s if ran_before else 0.0
            ran_before = True
            done.append(repeat)
            store_repeats(study, trial, done)  # each repeat kept as soon as it ends
            result.repeats_run += 1
            result.energy_j += repeat["energy_j"]
            result.duration_s += repeat["duration_s"]
            if not math.isclose(repeat["accuracy"], _accuracy_of(study, trial),
                                abs_tol=1e-9) and trial.number not in result.accuracy_differs:
                result.accuracy_differs.append(trial.number)
            if on_repeat is not None:
                on_repeat(trial.number, len(done), repeat)
    return result


def _check_arguments(repeats: int, candidates: str, cooldown_s: float) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfirmError(f"repeats must be a whole number >= 1 (got {repeats!r})")
    if candidates not in CONFIRM_CANDIDATES:
        raise ConfirmError(f"candidates {candidates!r}: expected one of "
                           f"{list(CONFIRM_CANDIDATES)}")
    if not (isinstance(cooldown_s, (int, float)) and math.isfinite(cooldown_s)
            and cooldown_s >= 0):
        raise ConfirmError(f"cooldown must be a number of seconds >= 0 (got {cooldown_s!r})")


def _spec_of(study: optuna.Study) -> StudySpec:
    data = study.user_attrs.get(STUDY_ATTR_SPEC)
    if not isinstance(data, dict):
        raise NotConfirmable(
            f"study {study.study_name!r} was not run by ecotune's built-in trainer (it has "
            f"no {STUDY_ATTR_SPEC} attribute), so ecotune cannot re-run its trials; in your "
            "own objective, train a configuration again with the same knobs and seed inside "
            "`with ecotune.measure(meter=...) as m:` and compare the m.energy_j figures")
    return StudySpec.model_validate(data)


def _meter_of(spec: StudySpec) -> Meter:
    """The meter the study's trials used: ``[energy] meter`` for the trainer's GPUs."""
    from ecotune.devices import DeviceError, cuda_indices, resolve_device

    try:
        device = resolve_device(spec.training.device)
        gpus = cuda_indices(device) if spec.energy.gpus == "used" else None
        return get_meter(spec.energy.meter, gpus)
    except (DeviceError, MeterError) as err:  # the study ran on another machine
        raise ConfirmError(f"cannot repeat the study's trials here with the same trainer "
                           f"and meter: {err}") from None


def study_noise(study: optuna.Study, label: str, meter: Meter,
                windows: int = DEFAULT_WINDOWS) -> MeterNoise:
    """The noise of ``meter`` stored in ``study`` under ``label``, else measured now
    (:func:`~ecotune.noise.meter_noise`) and stored there."""
    stored = study.user_attrs.get(STUDY_ATTR_METER_NOISE) or {}
    if isinstance(stored.get(label), dict):
        return MeterNoise.from_attr(stored[label])
    noise = meter_noise(meter, windows)
    study.set_user_attr(STUDY_ATTR_METER_NOISE, {**stored, label: noise.as_attr()})
    return noise


def repeat_trial(spec: StudySpec, trial: optuna.trial.FrozenTrial,
                 meter: Meter) -> dict[str, Any]:
    """Train ``trial``'s knobs once more from the spec's training seed, measured by
    ``meter``, and return the repeat's record (energy, duration, meter, accuracy)."""
    from ecotune.data import load_data
    from ecotune.search import EnergyOptions, TrainingPlan, measure, train_config
    from ecotune.training import train

    knobs = dict(trial.params)
    training = trial.user_attrs.get(ATTR_TRAINING)
    if isinstance(training, dict) and training.get("stop_reason") in _RULE_STOPS \
            and training.get("epochs_run"):
        knobs["epochs"] = int(training["epochs_run"])
    config = train_config(spec, knobs)
    data = load_data(spec.data.name, **spec.data.loader_options())
    energy = EnergyOptions(meter=meter, country=spec.energy.country, pue=spec.energy.pue,
                           device=config.device, gpus=spec.energy.gpus)
    plan = TrainingPlan(config.epochs, config.freeze_at_epoch, config.low_precision_at_epoch)
    with measure(None, energy, plan=plan, rules={}) as m:  # no rule: the same epochs
        result = train(data, config, seed=spec.training.seed, on_epoch=m, test=False)
    return {"energy_j": m.energy_j, "duration_s": m.duration_s, "meter": m.meter,
            "is_estimate": m.is_estimate, "accuracy": float(result.val_accuracy)}


def _accuracy_of(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> float:
    training = trial.user_attrs.get(ATTR_TRAINING)
    if isinstance(training, dict) and "val_accuracy" in training:
        return float(training["val_accuracy"])
    names = study.metric_names or []
    return float(trial.values[names.index("accuracy")]) if "accuracy" in names else math.nan


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
