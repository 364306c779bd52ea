"""Samplers by name: Optuna's grid, random, TPE, GP and NSGA-II, a
scikit-optimize-based Bayesian sampler with an optional cost-aware acquisition, and TPE
fit on successive halving's rung points."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "make_sampler": "ecotune.samplers._factory",
    "SkoptSampler": "ecotune.samplers._skopt",
    "RungTPESampler": "ecotune.samplers._rung_tpe",
    "rung_view": "ecotune.samplers._rung_tpe",
    "parego_scalarize": "ecotune.samplers._skopt",
    "cost_aware_proposal": "ecotune.samplers._cost_model",
    "log_cost_fit": "ecotune.samplers._cost_model",
}

__all__ = [
    "RungTPESampler",
    "SkoptSampler",
    "cost_aware_proposal",
    "log_cost_fit",
    "make_sampler",
    "parego_scalarize",
    "rung_view",
]

if TYPE_CHECKING:
    from ecotune.samplers._cost_model import cost_aware_proposal, log_cost_fit
    from ecotune.samplers._factory import make_sampler
    from ecotune.samplers._rung_tpe import RungTPESampler, rung_view
    from ecotune.samplers._skopt import SkoptSampler, parego_scalarize

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
