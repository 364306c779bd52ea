"""The search layer: joins data, models, knobs and meters to Optuna.

``create_study`` makes a study over named objectives (with the rules its trials obey),
``measure`` opens a measurement window on a trial with a per-epoch API, ``run`` runs a
whole study from a spec with the built-in trainer.

The modules are private (``_measure.py`` defines ``measure``), as in Optuna: importing a
module can then never replace a public name of this package. Names are imported on first
use, so that the CLI's storage helpers (:mod:`ecotune.search.storage`) do not pull in
torch; each always resolves to the object its module defines.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MeasurementWindow": "ecotune.search._measure",
    "measure": "ecotune.search._measure",
    "BuiltinObjective": "ecotune.search._objective",
    "planned_trials": "ecotune.search._runner",
    "run": "ecotune.search._runner",
    "prepare": "ecotune.search._study",
    "SAMPLER_NAMES": "ecotune.search._samplers",
    "make_sampler": "ecotune.search._samplers",
    "SkoptSampler": "ecotune.search._skopt",
    "StudyMismatchError": "ecotune.search._study",
    "create_study": "ecotune.search._study",
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
    from ecotune.search._measure import MeasurementWindow, measure
    from ecotune.search._objective import BuiltinObjective
    from ecotune.search._runner import planned_trials, run
    from ecotune.search._samplers import SAMPLER_NAMES, make_sampler
    from ecotune.search._skopt import SkoptSampler
    from ecotune.search._study import StudyMismatchError, create_study, prepare


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ecotune.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
