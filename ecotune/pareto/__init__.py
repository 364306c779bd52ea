"""Pareto fronts, feasibility and hypervolume: the one definition the package shares.

Which trials count (:func:`is_feasible`), what a study calls its objectives
(:func:`objective_names`), dominance, the hypervolume (:func:`hypervolume`, and
:class:`ParetoFront` kept up to date point by point), the hypervolume after each trial of
a search (:func:`hypervolume_history`, or :class:`HypervolumeHistory` trial by trial) and
the search energy it took to reach a level (:func:`energy_to_reach`), and the metrics that
compare searches: the levels of the reference hypervolume reported (:data:`LEVELS`), the
log hypervolume difference (:func:`log_hv_difference`) and ratios of search energy against
a baseline method (:func:`energy_ratio`).

Pure data (numpy, and Optuna's trials and studies as read-only inputs): no plotting, no
pandas, no storage. :mod:`ecotune.rules` (early stopping), :mod:`ecotune.report` (the
front, the hypervolume history, ``compare``) and :mod:`ecotune.tabular` (the replay)
import from here.
"""

from __future__ import annotations

from ecotune.pareto._dominance import dominated, non_dominated, to_costs
from ecotune.pareto._feasible import is_feasible
from ecotune.pareto._history import (
    REACH_TOLERANCE,
    HypervolumeHistory,
    energy_to_reach,
    hypervolume_history,
)
from ecotune.pareto._hypervolume import ParetoFront, hypervolume
from ecotune.pareto._metrics import (
    BASELINES,
    LEVELS,
    LOG_HV_DIFFERENCE_FLOOR,
    EnergyRatio,
    baseline_ratios,
    energy_ratio,
    level_tag,
    log_hv_difference,
)
from ecotune.pareto._objectives import objective_names

__all__ = ["BASELINES", "LEVELS", "LOG_HV_DIFFERENCE_FLOOR", "REACH_TOLERANCE", "EnergyRatio",
           "HypervolumeHistory", "ParetoFront", "baseline_ratios", "dominated", "energy_ratio",
           "energy_to_reach", "hypervolume", "hypervolume_history", "is_feasible", "level_tag",
           "log_hv_difference", "non_dominated", "objective_names", "to_costs"]
