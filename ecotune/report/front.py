"""The Pareto front of a study, as plain data (no drawing here).

Reads only an ``optuna.Study``, so it works on any multi-objective Optuna study.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import optuna
import pandas as pd

from ecotune.names import (
    ATTR_ACTIVATION_DENSITY,
    ATTR_CO2,
    ATTR_CPU_ENERGY,
    ATTR_DURATION,
    ATTR_ENERGY,
    ATTR_ENERGY_ATTRIBUTION,
    ATTR_ENERGY_IS_ESTIMATE,
    ATTR_EVALUATION_ENERGY,
    ATTR_GPU_ENERGY,
    ATTR_INFERENCE,
    ATTR_METER,
    ATTR_RAM_ENERGY,
    ATTR_TEST_ACCURACY,
    ATTR_TRAINING,
)
from ecotune.pareto import is_feasible, non_dominated, objective_names
from ecotune.report.noise import add_noise_columns, confirmed_mask, overlapping

__all__ = ["non_dominated", "pareto_front", "trials_frame", "sharing_trials_frames",
           "ENERGY_ATTRS"]

P = ParamSpec("P")
R = TypeVar("R")

#: Trial user attributes shown beside the objectives (those a trial has).
ENERGY_ATTRS = (ATTR_ENERGY, ATTR_CPU_ENERGY, ATTR_GPU_ENERGY, ATTR_RAM_ENERGY, ATTR_DURATION,
                ATTR_CO2, ATTR_METER, ATTR_ENERGY_IS_ESTIMATE, ATTR_ENERGY_ATTRIBUTION,
                ATTR_TEST_ACCURACY,
                ATTR_EVALUATION_ENERGY, ATTR_ACTIVATION_DENSITY)
#: Scalars of the built-in trainer's ``training`` attribute shown beside them.
TRAINING_KEYS = ("n_params", "macs", "activation_density", "epochs_run", "stop_reason")
#: Scalars of the ``inference`` attribute (hardware-model estimates) shown beside them.
INFERENCE_KEYS = ("asic_pj", "asic_energy_ratio", "eyeriss_rel", "eyeriss_energy_ratio")


#: Within :func:`sharing_trials_frames`: each study's frame, by ``id(study)``.
_SHARED: contextvars.ContextVar[dict[int, tuple[optuna.Study, pd.DataFrame]] | None] = (
    contextvars.ContextVar("ecotune_trials_frames", default=None))


def sharing_trials_frames(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function that reads unchanging studies (a report) so that
    :func:`trials_frame` builds each study's frame once during the call: the front, the
    Pareto plot, the parameter plots and the energy profiles all start from it."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _SHARED.set({})
        try:
            return function(*args, **kwargs)
        finally:
            _SHARED.reset(token)

    return wrapper


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per complete, feasible trial: objectives, ``params_*`` and energy
    attributes, plus ``on_front`` marking the non-dominated ones."""
    shared = _SHARED.get()
    if shared is None:
        return _trials_frame(study)
    if id(study) not in shared:  # the study is kept with its frame: its id stays its own
        shared[id(study)] = (study, _trials_frame(study))
    return shared[id(study)][1].copy()  # each caller its own: they cannot clash


def _trials_frame(study: optuna.Study) -> pd.DataFrame:
    names = objective_names(study)
    trials = [t for t in study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.COMPLETE,))
              if is_feasible(t)]
    rows = []
    for t in trials:
        row: dict = {"trial": t.number}
        row.update(zip(names, t.values))
        row.update({f"params_{k}": v for k, v in t.params.items()})
        row.update({k: t.user_attrs[k] for k in ENERGY_ATTRS
                    if k in t.user_attrs and k not in names})
        training = t.user_attrs.get(ATTR_TRAINING)
        if isinstance(training, dict):
            row.update({k: training[k] for k in TRAINING_KEYS if k in training})
        inference = t.user_attrs.get(ATTR_INFERENCE)
        if isinstance(inference, dict):
            row.update({k: inference[k] for k in INFERENCE_KEYS if k in inference})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["trial", *names])
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    frame["on_front"] = (non_dominated(frame[names].to_numpy(), maximize)
                         if len(frame) else pd.Series(dtype=bool))
    return add_noise_columns(frame, study)  # where `ecotune confirm` stored repeats


def pareto_front(study: optuna.Study, confirmed: bool = False) -> pd.DataFrame:
    """The non-dominated complete trials of a multi-objective study, as a table.

    Columns: ``trial`` (its number), each objective by name, ``params_<name>`` for each
    parameter, and the energy attributes the trials recorded (meter, estimate flag,
    per-device joules, CO2, test accuracy). Sorted by the first objective, best first.
    Infeasible trials (a positive constraint) are never on the front.

    Where ``ecotune confirm`` stored repeats (:mod:`ecotune.report.noise`): the mean and
    interval columns (``energy_j_mean``, ``energy_j_ci_low``, ``energy_j_ci_high``, ...,
    ``measurements``), ``on_confirmed_front`` (on the front of the means) and
    ``overlaps`` (the front's trials whose intervals overlap this one's).

    Args:
        confirmed: the front of the means instead: each repeated objective replaced by
            its mean where a trial has repeats (the objective columns still hold the
            values Optuna stored).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "energy_j"])
        >>> for acc, energy in [(0.9, 10.0), (0.8, 5.0), (0.7, 6.0)]:
        ...     study.add_trial(optuna.trial.create_trial(values=[acc, energy]))
        >>> front = pareto_front(study)
        >>> front["trial"].tolist(), front["accuracy"].tolist(), front["energy_j"].tolist()
        ([0, 1], [0.9, 0.8], [10.0, 5.0])
    """
    frame = trials_frame(study)
    names = objective_names(study)
    if "measurements" in frame:
        maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
        frame["on_confirmed_front"] = confirmed_mask(frame, names, maximize)
        if confirmed:
            frame["on_front"] = frame["on_confirmed_front"]
    front = frame[frame["on_front"]].drop(columns="on_front")
    if "measurements" in front:
        front["overlaps"] = overlapping(front, names)
    first = front.columns[1] if len(front.columns) > 1 else "trial"
    ascending = study.directions[0] != optuna.study.StudyDirection.MAXIMIZE
    return front.sort_values([first, "trial"], ascending=[ascending, True]).reset_index(
        drop=True)
