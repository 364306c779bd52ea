"""Sampling a study's knobs on a trial: the same Optuna calls for the built-in trainer and
for a replay of a recorded table, so a sampler sees the same search space in both.
No torch here: a replay must not import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecotune.spec import CategoricalParam, FloatParam, IntParam, StudySpec

if TYPE_CHECKING:
    import optuna

__all__ = ["suggest_knobs"]


def suggest_knobs(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Sample every knob of ``spec.search_space`` on ``trial``."""
    knobs: dict[str, Any] = {}
    for name, param in spec.search_space.items():
        if isinstance(param, CategoricalParam):
            knobs[name] = trial.suggest_categorical(name, list(param.choices))
        elif isinstance(param, IntParam):
            knobs[name] = trial.suggest_int(name, param.low, param.high, step=param.step,
                                            log=param.log)
        elif isinstance(param, FloatParam):
            knobs[name] = trial.suggest_float(name, param.low, param.high, step=param.step,
                                              log=param.log)
    return knobs
