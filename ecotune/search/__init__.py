"""The search layer: joins data, models, knobs and meters to Optuna.

``create_study`` makes a study over named objectives, ``measure`` records a measurement
window on a trial, ``run`` runs a whole study from a spec with the built-in trainer.
"""

from __future__ import annotations

from ecotune.search.measure import MeasurementWindow, measure
from ecotune.search.objective import BuiltinObjective
from ecotune.search.runner import planned_trials, prepare, run
from ecotune.search.samplers import SAMPLER_NAMES, make_sampler
from ecotune.search.skopt_sampler import SkoptSampler
from ecotune.search.study import StudyMismatchError, create_study

__all__ = [
    "BuiltinObjective",
    "MeasurementWindow",
    "SAMPLER_NAMES",
    "SkoptSampler",
    "StudyMismatchError",
    "create_study",
    "make_sampler",
    "measure",
    "planned_trials",
    "prepare",
    "run",
]
