"""The search layer: joins data, models, knobs and meters to Optuna.

``create_study`` makes a study over named objectives, ``measure`` records a measurement
window on a trial, ``run`` runs a whole study from a spec with the built-in trainer.

Names are imported on first use: the CLI's storage helpers (``ecotune.search.storage``)
must not pull in torch just because they live in this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MeasurementWindow": "ecotune.search.measure",
    "measure": "ecotune.search.measure",
    "BuiltinObjective": "ecotune.search.objective",
    "planned_trials": "ecotune.search.runner",
    "prepare": "ecotune.search.runner",
    "run": "ecotune.search.runner",
    "SAMPLER_NAMES": "ecotune.search.samplers",
    "make_sampler": "ecotune.search.samplers",
    "SkoptSampler": "ecotune.search.skopt_sampler",
    "StudyMismatchError": "ecotune.search.study",
    "create_study": "ecotune.search.study",
}

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

if TYPE_CHECKING:
    from ecotune.search.measure import MeasurementWindow, measure
    from ecotune.search.objective import BuiltinObjective
    from ecotune.search.runner import planned_trials, prepare, run
    from ecotune.search.samplers import SAMPLER_NAMES, make_sampler
    from ecotune.search.skopt_sampler import SkoptSampler
    from ecotune.search.study import StudyMismatchError, create_study


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ecotune.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
