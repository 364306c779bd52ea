"""Measurement noise: confirming a front by repeats, and a meter's noise.

``confirm(study, repeats=K)`` re-runs trials of a built-in-trainer study with the same
knobs and seed through the same trainer and meter, and stores every repeat beside the
trial (study attribute ``ecotune.repeats.N``), with the mean, the standard deviation and
a 95 % Student-t interval over the original and the repeats. ``meter_noise`` measures a
meter's coefficient of variation on a fixed workload. :mod:`ecotune.report` reads the
stored repeats for the front's mean and interval columns and the plot's error bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "Interval": "ecotune.noise._stats",
    "INTERVAL_RULE": "ecotune.noise._stats",
    "t_interval": "ecotune.noise._stats",
    "MEASURED": "ecotune.noise._stored",
    "intervals_of": "ecotune.noise._stored",
    "original_of": "ecotune.noise._stored",
    "repeats_key": "ecotune.noise._stored",
    "stored_repeats": "ecotune.noise._stored",
    "MeterNoise": "ecotune.noise._noise",
    "fixed_workload": "ecotune.noise._noise",
    "meter_noise": "ecotune.noise._noise",
    "candidate_trials": "ecotune.noise._candidates",
    "ConfirmError": "ecotune.noise._run",
    "ConfirmResult": "ecotune.noise._run",
    "NotConfirmable": "ecotune.noise._run",
    "confirm": "ecotune.noise._run",
    "study_noise": "ecotune.noise._run",
}

__all__ = [
    "INTERVAL_RULE", "MEASURED", "ConfirmError", "ConfirmResult", "Interval", "MeterNoise",
    "NotConfirmable", "candidate_trials", "confirm", "fixed_workload", "intervals_of",
    "meter_noise", "original_of", "repeats_key", "stored_repeats", "study_noise",
    "t_interval",
]

if TYPE_CHECKING:
    from ecotune.noise._candidates import candidate_trials
    from ecotune.noise._noise import MeterNoise, fixed_workload, meter_noise
    from ecotune.noise._run import (
        ConfirmError,
        ConfirmResult,
        NotConfirmable,
        confirm,
        study_noise,
    )
    from ecotune.noise._stats import INTERVAL_RULE, Interval, t_interval
    from ecotune.noise._stored import (
        MEASURED,
        intervals_of,
        original_of,
        repeats_key,
        stored_repeats,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
