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

import math
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
            (:mod:`ecotune.samplers._cost_model`; ``acq_func`` ``"EI"`` or ``"PI"``).
            None: plain EI.
        cost_exponent: the cost's weight ``alpha`` (>= 0), ``EI / cost ** alpha``; 0 is
            plain EI, exactly.
        cost_cooling: cool ``alpha`` from ``cost_exponent`` after the startup trials to 0
            when the budget is spent (CArBO, Lee et al. 2020); needs one of:
        cost_budget: the search budget in the cost objective's unit (joules for
            ``energy_j``; e.g. the study's ``[budgets] study_energy_j``), spent by the
            complete trials' costs;
        cost_budget_trials: the search budget in complete trials (e.g. ``n_trials``).

    Each proposal builds one ``skopt.Optimizer`` (``n_initial_points=0``,
    ``acq_optimizer="sampling"``, ``n_points=n_candidates``), tells it every complete
    trial at once and asks it: its ``random_state`` is the next
    ``RandomState(seed).randint(2**31 - 1)``, then a multi-objective study draws its
    ParEGO weights from the same generator. With no cost (or ``alpha = 0``) the proposal is
    that optimizer's ``ask()``, nothing else.

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
                 cost_objective: str | None = None, cost_exponent: float = 1.0,
                 cost_cooling: bool = False, cost_budget: float | None = None,
                 cost_budget_trials: int | None = None) -> None:
        _check_cost_options(acq_func, cost_objective, cost_exponent, cost_cooling,
                            cost_budget, cost_budget_trials)
        self.seed = seed
        self.cost_objective = cost_objective
        self.cost_exponent = float(cost_exponent)
        self.cost_cooling = cost_cooling
        self.cost_budget = None if cost_budget is None else float(cost_budget)
        self.cost_budget_trials = cost_budget_trials
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

        trials.sort(key=lambda t: t.number)
        params = sorted(search_space)
        dims = [_Dimension(search_space[name]) for name in params]
        costs = self._costs(study, trials)  # checked before anything is drawn
        # Draw from our own generator in a fixed order: same seed, same sequence.
        state = int(self._rng.randint(2**31 - 1))
        values = self._objective(study, trials)
        optimizer = Optimizer([d.space for d in dims], base_estimator="GP",
                              n_initial_points=0, acq_func=self.acq_func,
                              acq_optimizer="sampling",
                              acq_optimizer_kwargs={"n_points": self.n_candidates},
                              random_state=state)
        xs = [[d.to_skopt(t.params[name]) for d, name in zip(dims, params)] for t in trials]
        # The candidates tell() draws next; the cost-aware proposal redraws the same ones.
        rng_state = optimizer.rng.get_state()
        optimizer.tell(xs, values.tolist())
        alpha = 0.0 if costs is None else self.cost_alpha(costs)
        if costs is None or alpha == 0:
            proposal = optimizer.ask()
        else:
            from ecotune.samplers._cost_model import cost_aware_proposal

            proposal = cost_aware_proposal(optimizer, rng_state, costs, alpha)
        return {name: d.to_optuna(v) for name, d, v in zip(params, dims, proposal)}

    def cost_alpha(self, costs: Sequence[float]) -> float:
        """The cost's exponent for the next proposal, given the complete trials' costs (in
        trial order): ``cost_exponent``, cooled if ``cost_cooling``
        (:func:`~ecotune.samplers._cost_model.cooled_exponent`; the startup trials are the
        first ``n_startup_trials``).

        Example:
            >>> s = SkoptSampler(n_startup_trials=2, cost_objective="energy_j",
            ...                  cost_cooling=True, cost_budget=100.0)
            >>> s.cost_alpha([10, 10]), s.cost_alpha([10, 10, 40]), s.cost_alpha([50, 50])
            (1.0, 0.5, 0.0)
        """
        if not self.cost_cooling:
            return self.cost_exponent
        from ecotune.samplers._cost_model import cooled_exponent

        if self.cost_budget_trials is not None:
            fraction = cooled_exponent(len(costs), min(self.n_startup_trials, len(costs)),
                                       self.cost_budget_trials)
        else:
            assert self.cost_budget is not None
            fraction = cooled_exponent(float(np.sum(costs)),
                                       float(np.sum(costs[:self.n_startup_trials])),
                                       self.cost_budget)
        return self.cost_exponent * fraction

    def _costs(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> np.ndarray | None:
        if self.cost_objective is None:
            return None
        names = study.metric_names or []
        if self.cost_objective not in names:
            raise ValueError(f"cost_objective {self.cost_objective!r} is not an objective "
                             f"of the study (got {names})")
        index = names.index(self.cost_objective)
        return np.array([t.values[index] for t in trials], dtype=float)

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


def _check_cost_options(acq_func: Any, cost_objective: Any, cost_exponent: Any,
                        cost_cooling: Any, cost_budget: Any, cost_budget_trials: Any) -> None:
    """Refuse a bad cost option with a message that names it (ValueError)."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if cost_objective is not None and not isinstance(cost_objective, str):
        raise ValueError(f"cost_objective must be an objective's name (got {cost_objective!r})")
    if not number(cost_exponent) or not math.isfinite(cost_exponent) or cost_exponent < 0:
        raise ValueError(f"cost_exponent must be a number >= 0 (got {cost_exponent!r})")
    if not isinstance(cost_cooling, bool):
        raise ValueError(f"cost_cooling must be true or false (got {cost_cooling!r})")
    if cost_budget is not None and (not number(cost_budget) or not math.isfinite(cost_budget)
                                    or cost_budget <= 0):
        raise ValueError(f"cost_budget must be a number > 0 (got {cost_budget!r})")
    if cost_budget_trials is not None and (not isinstance(cost_budget_trials, int)
                                           or isinstance(cost_budget_trials, bool)
                                           or cost_budget_trials <= 0):
        raise ValueError(f"cost_budget_trials must be an integer > 0 "
                         f"(got {cost_budget_trials!r})")
    budgets = [name for name, value in (("cost_budget", cost_budget),
                                        ("cost_budget_trials", cost_budget_trials))
               if value is not None]
    if cost_cooling:
        if cost_objective is None:
            raise ValueError("cost_cooling needs a cost_objective (e.g. \"energy_j\")")
        if len(budgets) != 1:
            raise ValueError("cost_cooling needs exactly one budget to cool over: cost_budget "
                             "(in the cost objective's unit, e.g. [budgets] study_energy_j) "
                             f"or cost_budget_trials (e.g. n_trials); got {budgets or 'none'}")
    elif budgets:
        raise ValueError(f"{budgets[0]} is only used with cost_cooling = true")
    if cost_objective is not None:
        from ecotune.samplers._cost_model import COST_AWARE_ACQ_FUNCS

        if acq_func not in COST_AWARE_ACQ_FUNCS:
            raise ValueError(f"cost_objective needs acq_func one of "
                             f"{list(COST_AWARE_ACQ_FUNCS)} (got {acq_func!r})")
