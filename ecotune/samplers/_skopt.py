"""A Bayesian sampler on scikit-optimize's Gaussian process, as an Optuna sampler.

optuna-integration 5 has no SkoptSampler any more, so ecotune has its own: a few dozen
lines over ``skopt.Optimizer(base_estimator="GP")`` and its ask/tell interface.

Calling sequence (Optuna's): for each trial, ``infer_relative_search_space`` gives the
intersection search space of the trials so far, ``sample_relative`` proposes values for
all of it at once (the GP, after ``n_startup_trials`` complete trials), and
``sample_independent`` samples any parameter outside it (at random).

Multi-objective studies are handled as ParEGO does (Knowles 2006): each trial draws a fresh
weight vector ``w`` uniformly from the simplex, every objective is turned into one to
minimise and normalised to [0, 1] over the complete trials, and the GP models the
augmented Chebyshev scalarisation ``max_i(w_i f_i) + 0.05 * sum_i(w_i f_i)``. A new weight
per trial aims the search at a different part of the front each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

__all__ = ["SkoptSampler", "parego_scalarize"]

#: Weight of the linear term in ParEGO's augmented Chebyshev scalarisation.
PAREGO_RHO = 0.05


def parego_scalarize(costs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ParEGO's augmented Chebyshev scalarisation of ``costs`` (n trials x m objectives,
    all to minimise): normalise each column to [0, 1], then
    ``max_i(w_i f_i) + 0.05 * sum_i(w_i f_i)`` per row. A constant column normalises to 0.

    Example:
        >>> parego_scalarize(np.array([[0., 10.], [1., 0.]]), np.array([0.5, 0.5]))
        array([0.525, 0.525])
        >>> parego_scalarize(np.array([[0., 10.], [1., 0.]]), np.array([1.0, 0.0]))
        array([0.  , 1.05])
    """
    costs = np.asarray(costs, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if costs.ndim != 2 or costs.shape[1] != len(weights):
        raise ValueError(f"costs must be (n, {len(weights)}); got shape {costs.shape}")
    low, high = costs.min(axis=0), costs.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    normalised = (costs - low) / span
    weighted = normalised * weights
    return weighted.max(axis=1) + PAREGO_RHO * weighted.sum(axis=1)


class _Dimension:
    """One Optuna distribution as a scikit-optimize dimension, with the mapping back."""

    def __init__(self, distribution: BaseDistribution) -> None:
        from skopt.space import Categorical, Integer, Real

        self.distribution = distribution
        d = distribution
        if isinstance(d, CategoricalDistribution):
            # Indices as strings: skopt then one-hot encodes, whatever the choices' types.
            self.space = Categorical([str(i) for i in range(len(d.choices))])
        elif isinstance(d, IntDistribution):
            if d.log:
                self.space = Integer(d.low, d.high, prior="log-uniform")
            else:
                self.space = Integer(0, (d.high - d.low) // d.step)  # steps from low
        elif isinstance(d, FloatDistribution):
            self.space = Real(d.low, d.high, prior="log-uniform" if d.log else "uniform")
        else:  # pragma: no cover - Optuna has no other distributions
            raise ValueError(f"unsupported distribution {d!r}")

    def to_skopt(self, value: Any) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return str(d.to_internal_repr(value))
        if isinstance(d, IntDistribution):
            return int(value) if d.log else (int(value) - d.low) // d.step
        return float(value)

    def to_optuna(self, value: Any) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[int(value)]
        if isinstance(d, IntDistribution):
            return int(value) if d.log else d.low + int(value) * d.step
        value = float(np.clip(value, d.low, d.high))
        if d.step is not None:
            value = float(np.clip(d.low + round((value - d.low) / d.step) * d.step,
                                  d.low, d.high))
        return value


class SkoptSampler(optuna.samplers.BaseSampler):
    """Bayesian optimisation with scikit-optimize's GP (``Optimizer(base_estimator="GP")``).

    Args:
        seed: makes the sequence of proposals repeatable.
        n_startup_trials: complete trials sampled at random before the GP is used.
        acq_func: scikit-optimize's acquisition function (``"EI"``, ``"PI"``, ``"LCB"``,
            ``"gp_hedge"``).
        n_candidates: points the acquisition function is evaluated on per proposal.
        cost_objective: an objective to treat as each trial's cost (e.g. ``"energy_j"``):
            proposals then maximise expected improvement per predicted cost
            (:mod:`ecotune.samplers._cost_model`). None: plain EI.
        cost_exponent: the cost's weight, ``EI / cost ** cost_exponent``.

    Constraints (``trial.set_constraint``) are not modelled: infeasible trials count as
    ordinary observations.

    Example:
        >>> sampler = SkoptSampler(seed=0, n_startup_trials=3)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=8)
        >>> len(study.trials)
        8
    """

    def __init__(self, seed: int | None = None, n_startup_trials: int = 10,
                 acq_func: str = "EI", n_candidates: int = 2000,
                 cost_objective: str | None = None, cost_exponent: float = 1.0) -> None:
        self.seed = seed
        self.cost_objective = cost_objective
        self.cost_exponent = cost_exponent
        self.n_startup_trials = n_startup_trials
        self.acq_func = acq_func
        self.n_candidates = n_candidates
        self._rng = np.random.RandomState(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._search_space = optuna.search_space.IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._search_space.calculate(study)
        # A one-valued parameter is nothing to model (and skopt refuses low == high).
        return {name: d for name, d in space.items() if not d.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        trials = [t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                               use_cache=True)
                  if all(name in t.params for name in search_space)]
        if len(trials) < self.n_startup_trials:
            return {}
        from skopt import Optimizer

        names = sorted(search_space)
        dims = [_Dimension(search_space[name]) for name in names]
        # Draw from our own generator in a fixed order: same seed, same sequence.
        state = int(self._rng.randint(2**31 - 1))
        values = self._objective(study, trials)
        optimizer = Optimizer([d.space for d in dims], base_estimator="GP",
                              n_initial_points=0, acq_func=self.acq_func,
                              acq_optimizer="sampling",
                              acq_optimizer_kwargs={"n_points": self.n_candidates},
                              random_state=state)
        xs = [[d.to_skopt(t.params[name]) for d, name in zip(dims, names)] for t in trials]
        optimizer.tell(xs, values.tolist())
        if self.cost_objective is not None:
            from ecotune.samplers._cost_model import cost_aware_proposal

            names = study.metric_names or []
            if self.cost_objective not in names:
                raise ValueError(f"cost_objective {self.cost_objective!r} is not an objective "
                                 f"of the study (got {names})")
            costs = [t.values[names.index(self.cost_objective)] for t in trials]
            proposal = cost_aware_proposal(optimizer, xs, costs, self.n_candidates,
                                           self.cost_exponent, self._rng)
        else:
            proposal = optimizer.ask()
        return {name: d.to_optuna(v) for name, d, v in zip(names, dims, proposal)}

    def _objective(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> np.ndarray:
        signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0
                          for d in study.directions])
        costs = np.array([t.values for t in trials], dtype=float) * signs
        if costs.shape[1] == 1:
            return costs[:, 0]
        weights = self._rng.dirichlet(np.ones(costs.shape[1]))  # uniform on the simplex
        return parego_scalarize(costs, weights)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
