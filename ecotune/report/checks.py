"""Whether a study can be reported, and what a report leaves out (pure data, no drawing).

Reads only an ``optuna.Study``, so it works on any Optuna study. A report needs at least
one complete, feasible trial and an energy objective to minimise: an objective whose name
says energy (``energy_j``, ``inference_energy``, ``energy_kwh``, ...), or, in a study
without metric names, the second objective (ecotune's order: accuracy, then energy).
"""

from __future__ import annotations

from collections.abc import Collection

import optuna

from ecotune.names import ATTR_FAIL_REASON
from ecotune.pareto import is_feasible, objective_names

__all__ = ["ReportError", "NothingToReport", "energy_objective",
           "is_energy_name", "check_reportable", "plots_not_drawn", "NOT_DRAWN"]

#: Why each plot may be missing from a report (each has exactly one reason).
NOT_DRAWN = {
    "pareto": "needs two or more objectives",
    "hypervolume": "no finished trial",
    "learning_curves": "no per-epoch data (the trials have no training.learning_curve "
                       "attribute; ecotune's built-in trainer records it)",
    "parameters": "the trials have no parameters",
}

# Words in an objective's name that mark it as an energy figure.
_ENERGY_WORDS = ("energy", "joule", "kwh")


class ReportError(ValueError):
    """A study that cannot be reported as asked (bad input: the study or an option)."""


class NothingToReport(ReportError):
    """A study with no complete, feasible trial: there is nothing to draw."""


def is_energy_name(name: str) -> bool:
    """Whether an objective's name says it is an energy figure.

    Example:
        >>> is_energy_name("energy_j"), is_energy_name("Energy (kWh)"), is_energy_name("loss")
        (True, True, False)
    """
    lowered = name.lower()
    return any(word in lowered for word in _ENERGY_WORDS)


def _describe(study: optuna.Study) -> str:
    return ", ".join(f"{n} ({d.name.lower()})"
                     for n, d in zip(objective_names(study), study.directions))


def energy_objective(study: optuna.Study) -> str:
    """The name of the study's energy objective (see the module docstring).

    Raises:
        ReportError: there is none, or it is maximised; the message names the objectives
            found.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "energy_kwh"])
        >>> energy_objective(study)
        'energy_kwh'
    """
    names = objective_names(study)
    if study.metric_names:
        candidates = [n for n in names if is_energy_name(n)]
        # Prefer ecotune's own name where a study has several energy-like objectives.
        name = "energy_j" if "energy_j" in candidates else (candidates or [None])[0]
    else:
        name = names[1] if len(names) >= 2 else None
    if name is None:
        raise ReportError(f"study {study.study_name!r} has no energy objective to report "
                          f"(objectives found: {_describe(study)}); name it with "
                          "study.set_metric_names, e.g. ['accuracy', 'energy_j']")
    direction = study.directions[names.index(name)]
    if direction != optuna.study.StudyDirection.MINIMIZE:
        raise ReportError(f"study {study.study_name!r}: the energy objective {name!r} is "
                          f"maximised, expected minimised (objectives found: "
                          f"{_describe(study)})")
    return name


def _fail_reason(trial: optuna.trial.FrozenTrial) -> str | None:
    # ecotune stores it as a user attribute; Optuna < 3 stored it as a system attribute.
    return trial.user_attrs.get(ATTR_FAIL_REASON) or trial.system_attrs.get("fail_reason")


def check_reportable(study: optuna.Study, color_by: str | None = None) -> str:
    """Refuse a study a report cannot show; return its energy objective's name.

    Raises:
        NothingToReport: no complete, feasible trial; the message counts the failed,
            pruned and infeasible trials and gives the first failure's reason.
        ReportError: no energy objective to minimise, or ``color_by`` is not a
            parameter of the study (the message lists those it has).
    """
    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == State.COMPLETE]
    if not any(is_feasible(t) for t in complete):
        failed = [t for t in trials if t.state == State.FAIL]
        pruned = sum(t.state == State.PRUNED for t in trials)
        counts = f"{len(failed)} failed, {pruned} pruned"
        if complete:
            counts += f", {len(complete)} infeasible"
        first = next((t for t in failed if _fail_reason(t)), failed[0] if failed else None)
        reason = (f"; first failure: trial {first.number}: "
                  f"{_fail_reason(first) or 'no reason recorded'}" if first else "")
        raise NothingToReport(f"study {study.study_name!r} has no complete trial to report "
                              f"({counts}){reason}")
    name = energy_objective(study)
    if color_by is not None:
        params = sorted({p for t in complete for p in t.params})
        if color_by not in params:
            raise ReportError(f"cannot colour by {color_by!r}: not a parameter of study "
                              f"{study.study_name!r}; its parameters: "
                              f"{', '.join(params) or 'none'}")
    return name


def plots_not_drawn(drawn: Collection[str]) -> dict[str, str]:
    """The plots of :data:`NOT_DRAWN` that are not in ``drawn``, with the reason for each.

    Example:
        >>> list(plots_not_drawn(["pareto", "hypervolume", "parameters"]))
        ['learning_curves']
    """
    return {name: reason for name, reason in NOT_DRAWN.items() if name not in drawn}
