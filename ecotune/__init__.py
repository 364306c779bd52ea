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

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the private module that defines each (Optuna's convention: no module
# is named like a function it defines, so importing a module can never replace a public
# name). They are imported on first use, so that `import ecotune` (and `ecotune --help`)
# does not pay for torch, Optuna, plotly and pandas.
_EXPORTS = {
    "SpecError": "ecotune.spec",
    "StudySpec": "ecotune.spec",
    "load_spec": "ecotune.spec",
    "MeasurementWindow": "ecotune.search._measure",
    "create_study": "ecotune.search._study",
    "measure": "ecotune.search._measure",
    "run": "ecotune.search._runner",
    "pareto_front": "ecotune.report",
    "write_report": "ecotune.report",
}

__all__ = [
    "MeasurementWindow",
    "SpecError",
    "StudySpec",
    "__version__",
    "create_study",
    "load_spec",
    "measure",
    "pareto_front",
    "run",
    "write_report",
]

if TYPE_CHECKING:
    from ecotune.report import pareto_front, write_report
    from ecotune.search._measure import MeasurementWindow, measure
    from ecotune.search._runner import run
    from ecotune.search._study import create_study
    from ecotune.spec import SpecError, StudySpec, load_spec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ecotune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
