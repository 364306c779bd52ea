"""TPE fit on successive halving's rung points: the idea of BOHB, for two objectives.

With successive halving most trials stop at the first rung, and a stopped trial's values
are those of a few epochs (``on_stop = "complete"``) or none at all (``"prune"``). Plain
TPE then models a mix of fidelities: a configuration stopped after one epoch looks cheap
and inaccurate whatever it would have become. BOHB (Falkner et al. 2018) fits its model
on one budget instead, the largest at which enough trials were observed, so that every
observation it learns from is comparable. This sampler does that with Optuna's
multi-objective TPE: before each proposal it shows TPE the study as seen at one rung,

- the rung: the largest epoch at which at least ``min_points`` finished trials recorded a
  successive-halving point (the ``successive_halving`` user attribute: per rung epoch,
  the validation accuracy and the cumulative training energy there);
- each finished trial with a point at that rung, its objectives ``accuracy`` and
  ``energy_j`` replaced by the point's (any other objective keeps the trial's own value),
  as a complete trial; finished trials without a point there (or a pruned one, which
  has no value for such another objective) are left out; running
  trials are passed as they are (TPE's ``constant_liar``).

Until some rung has ``min_points`` points (or in a study without successive halving) TPE
sees the study as it is, so the sampler is then exactly :class:`optuna.samplers.TPESampler`.
"""

from __future__ import annotations

import copy
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from ecotune.names import ATTR_SUCCESSIVE_HALVING

__all__ = ["RungTPESampler", "rung_view"]

#: The rung point's fields, by objective name (``[accuracy, energy_j]``, as stored).
_POINT_FIELDS = {"accuracy": 0, "energy_j": 1}
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def rung_view(trials: list[FrozenTrial], metric_names: list[str] | None,
              min_points: int) -> tuple[int | None, list[FrozenTrial]]:
    """The rung TPE is fit on (None: no rung has ``min_points`` points yet) and the
    trials as seen there (see the module's docstring); ``trials`` themselves are not
    changed.

    Example:
        >>> from optuna.distributions import FloatDistribution
        >>> def t(n, points):
        ...     return optuna.trial.create_trial(
        ...         params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
        ...         values=[0.9, 30.0], user_attrs={"successive_halving": points})
        >>> trials = [t(0, {"1": [0.5, 1.0], "3": [0.8, 3.0]}), t(1, {"1": [0.4, 1.1]})]
        >>> rung, seen = rung_view(trials, ["accuracy", "energy_j"], min_points=2)
        >>> rung, [s.values for s in seen]
        (1, [[0.5, 1.0], [0.4, 1.1]])
        >>> rung_view(trials, ["accuracy", "energy_j"], min_points=3)[0] is None
        True
    """
    if not metric_names or not set(_POINT_FIELDS) <= set(metric_names):
        return None, trials
    counts: dict[int, int] = {}
    for t in trials:
        if t.state in _FINISHED:
            for epoch in t.user_attrs.get(ATTR_SUCCESSIVE_HALVING, {}):
                counts[int(epoch)] = counts.get(int(epoch), 0) + 1
    full = [epoch for epoch, n in counts.items() if n >= min_points]
    if not full:
        return None, trials
    rung = max(full)
    key = str(rung)
    seen = []
    for t in trials:
        if t.state == TrialState.RUNNING:
            seen.append(t)
            continue
        point = t.user_attrs.get(ATTR_SUCCESSIVE_HALVING, {}).get(key)
        if t.state not in _FINISHED or point is None:
            continue
        own = t.values if t.values is not None else [None] * len(metric_names)
        values = [float(point[_POINT_FIELDS[name]]) if name in _POINT_FIELDS else value
                  for name, value in zip(metric_names, own)]
        if None in values:  # a pruned trial has no value for another objective
            continue
        # A shallow copy: TPE reads params, values, state and attributes, never writes.
        view = copy.copy(t)
        view._values = values
        view.state = TrialState.COMPLETE
        seen.append(view)
    return rung, seen


class _AtRung:
    """A study as TPE sees it: its trials through :func:`rung_view`, the rest as is."""

    def __init__(self, study: optuna.Study, min_points: int) -> None:
        self._study = study
        self._min_points = min_points

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Any = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states,
                                         use_cache=use_cache)
        return rung_view(trials, self._study.metric_names, self._min_points)[1]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


class RungTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, fit on the trials' points at one successive-halving rung.

    Args:
        min_points: finished trials a rung needs before TPE is fit on it (default 10,
            TPE's own default ``n_startup_trials``); the largest such rung is used.
        **options: :class:`optuna.samplers.TPESampler`'s arguments.
    """

    def __init__(self, *, min_points: int = 10, **options: Any) -> None:
        if not isinstance(min_points, int) or isinstance(min_points, bool) or min_points < 1:
            raise ValueError(f"min_points must be an integer >= 1 (got {min_points!r})")
        super().__init__(**options)
        self.min_points = min_points

    def _at_rung(self, study: optuna.Study) -> Any:
        return _AtRung(study, self.min_points)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return super().infer_relative_search_space(self._at_rung(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return super().sample_relative(self._at_rung(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return super().sample_independent(self._at_rung(study), trial, param_name,
                                          param_distribution)
