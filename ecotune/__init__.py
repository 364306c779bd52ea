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

from ecotune.report import pareto_front, write_report
from ecotune.search import create_study, measure, run
from ecotune.spec import SpecError, StudySpec, load_spec

__version__ = "0.1.0"

__all__ = [
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
