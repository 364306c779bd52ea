"""The study API: joins data, models, knobs and meters to Optuna.

``create_study`` makes a study over named objectives (with the rules its trials obey),
``measure`` opens a measurement window on a trial with a per-epoch API, ``run`` runs a
whole study from a spec with the built-in trainer.

The other jobs of a search have packages of their own: :mod:`ecotune.rules` (budgets,
early stopping, successive halving), :mod:`ecotune.samplers`, :mod:`ecotune.execution`
(workers, failure reasons), :mod:`ecotune.storage` and :mod:`ecotune.comparison`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "MeasurementWindow": "ecotune.search._measure",
    "EnergyOptions": "ecotune.search._measure",
    "TrainingPlan": "ecotune.search._measure",
    "measure": "ecotune.search._measure",
    "measure_inference_energy": "ecotune.search._inference",
    "BuiltinObjective": "ecotune.search._objective",
    "train_config": "ecotune.search._objective",
    "suggest_knobs": "ecotune.search._knobs",
    "planned_trials": "ecotune.search._runner",
    "optimize": "ecotune.search._runner",
    "run": "ecotune.search._runner",
    "start_workers": "ecotune.search._runner",
    "prepare": "ecotune.search._study",
    "StudyMismatchError": "ecotune.search._study",
    "create_study": "ecotune.search._study",
}

__all__ = [
    "BuiltinObjective",
    "MeasurementWindow",
    "EnergyOptions",
    "TrainingPlan",
    "StudyMismatchError",
    "create_study",
    "measure",
    "measure_inference_energy",
    "optimize",
    "planned_trials",
    "prepare",
    "run",
    "start_workers",
    "suggest_knobs",
    "train_config",
]

if TYPE_CHECKING:
    from ecotune.search._inference import measure_inference_energy
    from ecotune.search._knobs import suggest_knobs
    from ecotune.search._measure import (
        EnergyOptions,
        MeasurementWindow,
        TrainingPlan,
        measure,
    )
    from ecotune.search._objective import BuiltinObjective, train_config
    from ecotune.search._runner import optimize, planned_trials, run, start_workers
    from ecotune.search._study import StudyMismatchError, create_study, prepare

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
