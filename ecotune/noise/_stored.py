"""A trial's repeated measurements, as ``ecotune confirm`` stores them.

Optuna refuses attribute writes on a finished trial (``UpdateFinishedTrialError``) and
caches finished trials as fixed, so the repeats of trial N are the study attribute
``ecotune.repeats.N``: one attribute per trial, rewritten after each repeat (an
interrupted confirm keeps every repeat it finished). The trial's values and attributes
stay as Optuna stored them, and no trial is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ecotune.names import (
    ATTR_DURATION,
    ATTR_ENERGY,
    ATTR_ENERGY_IS_ESTIMATE,
    ATTR_METER,
    STUDY_ATTR_REPEATS_PREFIX,
)
from ecotune.noise._stats import INTERVAL_RULE, Interval, t_interval

if TYPE_CHECKING:
    import optuna

__all__ = ["MEASURED", "repeats_key", "stored_repeats", "store_repeats", "original_of",
           "intervals_of"]

#: The figures a repeat measures (the accuracy of the same knobs and seed is the same).
MEASURED = (ATTR_ENERGY, ATTR_DURATION)


def repeats_key(number: int) -> str:
    """The study attribute holding trial ``number``'s repeats.

    Example:
        >>> repeats_key(7)
        'ecotune.repeats.7'
    """
    return f"{STUDY_ATTR_REPEATS_PREFIX}{number}"


def stored_repeats(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Every trial's stored record, by trial number (one read of the study's attributes)."""
    records = {}
    for key, value in study.user_attrs.items():
        if key.startswith(STUDY_ATTR_REPEATS_PREFIX) and isinstance(value, dict):
            suffix = key.removeprefix(STUDY_ATTR_REPEATS_PREFIX)
            if suffix.isdigit():
                records[int(suffix)] = value
    return records


def original_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's own measurement, as a repeat is recorded."""
    attrs = trial.user_attrs
    return {ATTR_ENERGY: attrs.get(ATTR_ENERGY), ATTR_DURATION: attrs.get(ATTR_DURATION),
            "meter": attrs.get(ATTR_METER), "is_estimate": attrs.get(ATTR_ENERGY_IS_ESTIMATE)}


def intervals_of(original: Mapping[str, Any],
                 repeats: Sequence[Mapping[str, Any]]) -> dict[str, Interval]:
    """Per measured figure, the interval over the original and the repeats."""
    out = {}
    for figure in MEASURED:
        values = [float(m[figure]) for m in (original, *repeats)
                  if isinstance(m.get(figure), (int, float))]
        if values:
            out[figure] = t_interval(values)
    return out


def store_repeats(study: optuna.Study, trial: optuna.trial.FrozenTrial,
                  repeats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write trial ``trial``'s record: the original measurement, every repeat, and per
    figure the mean, standard deviation and interval. Returns the record."""
    original = original_of(trial)
    record: dict[str, Any] = {"original": original, "repeats": [dict(r) for r in repeats],
                              "interval": INTERVAL_RULE}
    for figure, iv in intervals_of(original, repeats).items():
        record[figure] = {"n": iv.n, "mean": iv.mean, "std": _json(iv.std),
                          "low": _json(iv.low), "high": _json(iv.high)}
    study.set_user_attr(repeats_key(trial.number), record)
    return record


def _json(value: float) -> float | None:
    """NaN is not JSON: an interval of one value is stored as None."""
    return None if value != value else value
