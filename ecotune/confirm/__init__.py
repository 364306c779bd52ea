"""Confirming a front: repeated measurements of chosen trials, and the meter's noise.

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
    "Interval": "ecotune.confirm._stats",
    "INTERVAL_RULE": "ecotune.confirm._stats",
    "t_interval": "ecotune.confirm._stats",
    "MEASURED": "ecotune.confirm._stored",
    "intervals_of": "ecotune.confirm._stored",
    "original_of": "ecotune.confirm._stored",
    "repeats_key": "ecotune.confirm._stored",
    "stored_repeats": "ecotune.confirm._stored",
    "MeterNoise": "ecotune.confirm._noise",
    "fixed_workload": "ecotune.confirm._noise",
    "meter_noise": "ecotune.confirm._noise",
    "candidate_trials": "ecotune.confirm._candidates",
    "ConfirmError": "ecotune.confirm._run",
    "ConfirmResult": "ecotune.confirm._run",
    "NotConfirmable": "ecotune.confirm._run",
    "confirm": "ecotune.confirm._run",
    "study_noise": "ecotune.confirm._run",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ecotune.confirm._candidates import candidate_trials
    from ecotune.confirm._noise import MeterNoise, fixed_workload, meter_noise
    from ecotune.confirm._run import (
        ConfirmError,
        ConfirmResult,
        NotConfirmable,
        confirm,
        study_noise,
    )
    from ecotune.confirm._stats import INTERVAL_RULE, Interval, t_interval
    from ecotune.confirm._stored import (
        MEASURED,
        intervals_of,
        original_of,
        repeats_key,
        stored_repeats,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
