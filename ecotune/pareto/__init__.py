"""Pareto fronts, feasibility and hypervolume: the one definition the package shares.

Pure data (numpy, and Optuna's ``FrozenTrial`` for feasibility): no plotting, no pandas,
no storage. Both :mod:`ecotune.search` (early stopping) and :mod:`ecotune.report` (the
front, the hypervolume, ``compare``) import from here.
"""

from __future__ import annotations

from ecotune.pareto._dominance import non_dominated, to_costs
from ecotune.pareto._feasible import is_feasible
from ecotune.pareto._history import REACH_TOLERANCE, energy_to_reach, hypervolume_history
from ecotune.pareto._hypervolume import ParetoFront, hypervolume
from ecotune.pareto._objectives import objective_names

__all__ = ["REACH_TOLERANCE", "ParetoFront", "energy_to_reach", "hypervolume",
           "hypervolume_history", "is_feasible", "non_dominated", "objective_names", "to_costs"]
