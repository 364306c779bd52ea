"""Energy-aware proposals for the ``skopt`` sampler: expected improvement per joule.

With ``cost_objective = "energy_j"``, the sampler models the log of each trial's training
energy as linear in the knobs (scaled to [0, 1] as the GP sees them; a ridge fit: energy
is close to a product of powers of width, epochs and the like, and a linear fit costs
microseconds where a second GP costs a second per trial on 2 cores), and proposes the candidate
that maximises ``EI(x) / predicted_energy(x) ** alpha`` instead of ``EI(x)`` alone (Snoek
et al. 2012, "expected improvement per second", with energy for time). A trial's cost is
thus weighed before it runs: of two equally promising configurations, the cheaper goes
first.

``alpha`` is ``cost_exponent``, or, with cost cooling (Lee et al. 2020, "CArBO"; SMAC3's
cost-aware acquisition does the same), ``cost_exponent`` times
:func:`cooled_exponent`: 1 once the startup trials are spent, falling linearly to 0 as
the rest of the search budget is spent, so that the search starts cheap and ends as plain
EI.

The candidates are exactly those scikit-optimize's ``Optimizer`` evaluated its own
acquisition on (the same draws from its random state), and with ``alpha = 0`` the proposal
*is* ``Optimizer.ask()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cooled_exponent", "cost_aware_proposal", "log_cost_fit"]

#: Ridge penalty of the log-cost fit: keeps it steady with few trials.
RIDGE = 1e-3

#: The acquisition functions a cost can divide (non-negative, larger is better).
COST_AWARE_ACQ_FUNCS = ("EI", "PI")


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


def cooled_exponent(spent: float, initial: float, budget: float) -> float:
    """CArBO's cost cooling: ``(budget - spent) / (budget - initial)``, clipped to [0, 1].

    Args:
        spent: the budget spent so far (joules, or trials).
        initial: what the startup (random) trials spent of it.
        budget: the whole search budget, in the same unit.

    A budget the startup trials already used up cools to 0 at once (plain EI).

    Example:
        >>> cooled_exponent(10, 10, 50), cooled_exponent(30, 10, 50), cooled_exponent(50, 10, 50)
        (1.0, 0.5, 0.0)
        >>> cooled_exponent(80, 10, 50), cooled_exponent(12, 12, 10)
        (0.0, 0.0)
    """
    if budget <= initial:
        return 0.0
    return float(min(1.0, max(0.0, (budget - spent) / (budget - initial))))


def cost_aware_proposal(optimizer: Any, rng_state: Any, costs: np.ndarray,
                        alpha: float) -> list[Any]:
    """The candidate (in the optimizer's space) with the largest acquisition per
    ``predicted_cost ** alpha``.

    Args:
        optimizer: a ``skopt.Optimizer`` with ``acq_optimizer="sampling"``, told every trial
            (one ``tell``; its last model fitted).
        rng_state: ``optimizer.rng.get_state()`` taken just before that ``tell``: the
            candidates are redrawn from it, so they are the ones the optimizer evaluated.
        costs: each told trial's cost (> 0), in the order told, e.g. training energy (J).
        alpha: the cost's exponent; 0 returns ``optimizer.ask()`` itself.

    A candidate already evaluated is passed over for the next best (scikit-optimize avoids
    duplicates too); if every candidate was, a random point is drawn, as it does.
    """
    if alpha == 0:
        return list(optimizer.ask())
    from skopt.acquisition import _gaussian_acquisition

    space = optimizer.space
    rng = np.random.RandomState()
    rng.set_state(rng_state)
    candidates = space.transform(space.rvs(n_samples=optimizer.n_points, random_state=rng))
    # Negated (scikit-optimize minimises), hence the minus below.
    acquisition = -_gaussian_acquisition(candidates, optimizer.models[-1],
                                         y_opt=float(np.min(optimizer.yi)),
                                         acq_func=optimizer.acq_func,
                                         acq_func_kwargs=optimizer.acq_func_kwargs)
    log_costs = np.log(np.maximum(np.asarray(costs, dtype=float), 1e-12))
    coef = log_cost_fit(space.transform(optimizer.Xi), log_costs)
    log_predicted = np.column_stack([np.ones(len(candidates)), candidates]) @ coef
    score = acquisition * np.exp(-alpha * log_predicted)
    points = space.inverse_transform(candidates)
    seen = {tuple(x) for x in optimizer.Xi}
    for index in np.argsort(-score, kind="stable"):
        if tuple(points[index]) not in seen:
            return list(points[index])
    return list(space.rvs(random_state=optimizer.rng)[0])
