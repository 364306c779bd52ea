"""ecotune: hyperparameter search with energy as a first-class objective.

A study is a plain ``optuna.Study`` over accuracy and measured energy (and more); each
trial's training runs inside a meter window, and the study ends in a Pareto front.

Example:
    >>> import ecotune
    >>> study = ecotune.create_study("api-demo", storage=None, sampler="random", seed=0)
    >>> def objective(trial):
    ...     n = trial.suggest_int("n", 10_000, 100_000, log=True)
    ...     with ecotune.measure(trial, meter="cputime") as m:
    ...         accuracy = 1 - 1 / (1 + sum(range(n)) % 7)
    ...     return accuracy, m.energy_j
    >>> study.optimize(objective, n_trials=3)
    >>> list(ecotune.pareto_front(study).columns[:3])
    ['trial', 'accuracy', 'energy_j']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

__version__ = "0.1.0"

# Public names and the package that exports each, imported on first use (ecotune._lazy):
# `import ecotune` (and `ecotune --help`) does not pay for torch, Optuna, plotly, pandas.
_EXPORTS = {
    "SpecError": "ecotune.spec",
    "StudySpec": "ecotune.spec",
    "load_spec": "ecotune.spec",
    "MeasurementWindow": "ecotune.search",
    "EnergyOptions": "ecotune.search",
    "TrainingPlan": "ecotune.search",
    "create_study": "ecotune.search",
    "measure": "ecotune.search",
    "run": "ecotune.search",
    "confirm": "ecotune.noise",
    "pareto_front": "ecotune.report",
    "write_report": "ecotune.report",
}

__all__ = [
    "MeasurementWindow",
    "EnergyOptions",
    "TrainingPlan",
    "SpecError",
    "StudySpec",
    "__version__",
    "confirm",
    "create_study",
    "load_spec",
    "measure",
    "pareto_front",
    "run",
    "write_report",
]

if TYPE_CHECKING:
    from ecotune.noise import confirm
    from ecotune.report import pareto_front, write_report
    from ecotune.search import (
        EnergyOptions,
        MeasurementWindow,
        TrainingPlan,
        create_study,
        measure,
        run,
    )
    from ecotune.spec import SpecError, StudySpec, load_spec


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
