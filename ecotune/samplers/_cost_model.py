"""Energy-aware proposals for the ``skopt`` sampler: expected improvement per joule.

With ``cost_objective = "energy_j"``, the sampler models the log of each trial's training
energy as linear in the knobs (scaled to [0, 1] as the GP sees them; a ridge fit: energy
is close to a product of powers of width, epochs and the like, and a linear fit costs
microseconds where a second GP costs a second per trial on 2 cores), and proposes the candidate
that maximises ``EI(x) / predicted_energy(x) ** cost_exponent`` instead of ``EI(x)``
alone (Snoek et al. 2012, "expected improvement per second", with energy for time). A
trial's cost is thus weighed before it runs: of two equally promising configurations, the
cheaper goes first, so the low-energy end of the front is found cheaply and dear
configurations are paid for only when they promise enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["cost_aware_proposal", "log_cost_fit"]

#: Ridge penalty of the log-cost fit: keeps it steady with few trials.
RIDGE = 1e-3


def log_cost_fit(x: np.ndarray, log_costs: np.ndarray) -> np.ndarray:
    """Ridge least squares of ``log_costs`` on ``[1, x]``: the intercept, then one
    coefficient per column of ``x``.

    Example:
        >>> x = np.array([[0.0], [0.5], [1.0]])
        >>> np.round(log_cost_fit(x, np.log([1.0, 2.0, 4.0])), 2)  # log 4 = 1.39
        array([0.  , 1.38])
    """
    design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    penalty = RIDGE * np.eye(design.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(design.T @ design + penalty, design.T @ np.asarray(log_costs))


def cost_aware_proposal(optimizer: Any, xs: Sequence[Sequence[Any]], costs: Sequence[float],
                        n_candidates: int, cost_exponent: float,
                        rng: np.random.RandomState) -> list[Any]:
    """The candidate (in the optimizer's space) with the largest EI per predicted cost.

    Args:
        optimizer: a ``skopt.Optimizer`` already told every trial (its last model fitted).
        xs: the trials' points, as told to it.
        costs: each trial's cost (> 0), e.g. its training energy in joules.
        n_candidates: random candidates the ratio is evaluated on.
        cost_exponent: 0 ignores the cost; 1 is EI per joule.
        rng: the source of the candidates.
    """
    from skopt.acquisition import gaussian_ei

    space = optimizer.space
    model = optimizer.models[-1]
    train = space.transform(list(xs))
    log_costs = np.log(np.maximum(np.asarray(costs, dtype=float), 1e-12))
    coef = log_cost_fit(train, log_costs)
    candidates = space.rvs(n_samples=n_candidates, random_state=rng)
    transformed = space.transform(candidates)
    ei = gaussian_ei(transformed, model, y_opt=float(np.min(optimizer.yi)))
    predicted = np.exp(np.column_stack([np.ones(len(transformed)), transformed]) @ coef)
    score = ei / np.maximum(predicted, 1e-12) ** cost_exponent
    return list(candidates[int(np.argmax(score))])
