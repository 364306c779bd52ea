"""Which trials ``confirm`` repeats: the front, the trials whose measured objectives,
within the meter's noise, could reach it ("near-front"), or every complete trial."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import optuna

from ecotune.names import ATTR_DURATION, ATTR_ENERGY, CONFIRM_CANDIDATES
from ecotune.pareto import dominated, is_feasible, non_dominated, objective_names

__all__ = ["complete_trials", "candidate_trials", "noise_by_objective", "Z_95"]

#: Half-width of a two-sided 95 % band of one normal measurement, in standard deviations.
Z_95 = 1.96
#: The objectives a meter measures, and which of its variations applies to each
#: (CO2 is energy times a constant).
_NOISY = {ATTR_ENERGY: "energy_cv", "co2_g": "energy_cv", ATTR_DURATION: "duration_cv"}


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The complete, feasible trials: the ones a front is made of."""
    return [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))
            if is_feasible(t)]


def noise_by_objective(names: Sequence[str], energy_cv: float,
                       duration_cv: float) -> np.ndarray:
    """Per objective, the coefficient of variation of one measurement (0: exact).

    Example:
        >>> noise_by_objective(["accuracy", "energy_j", "duration_s"], 0.05, 0.02).tolist()
        [0.0, 0.05, 0.02]
    """
    cvs = {"energy_cv": energy_cv, "duration_cv": duration_cv}
    return np.array([cvs[_NOISY[n]] if n in _NOISY else 0.0 for n in names], dtype=float)


def candidate_trials(study: optuna.Study, which: str,
                     noise: Mapping[str, float] | None = None,
                     ) -> list[optuna.trial.FrozenTrial]:
    """The trials ``which`` names (:data:`ecotune.names.CONFIRM_CANDIDATES`), by number.

    ``noise`` (``energy_cv``, ``duration_cv``) is needed for ``"near-front"``: a trial is a
    candidate when, with its measured objectives at the good end of their 95 % band
    (value x (1 -/+ 1.96 cv)) and every other trial's at the bad end, no trial dominates
    it. The front's trials always are.
    """
    if which not in CONFIRM_CANDIDATES:
        raise ValueError(f"candidates {which!r}: expected one of {list(CONFIRM_CANDIDATES)}")
    trials = complete_trials(study)
    if which == "all" or not trials:
        return trials
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    values = np.array([t.values for t in trials], dtype=float)
    if which == "front":
        return [t for t, keep in zip(trials, non_dominated(values, maximize)) if keep]
    if noise is None:
        raise ValueError("near-front candidates need the meter's noise")
    band = Z_95 * noise_by_objective(objective_names(study), noise["energy_cv"],
                                     noise["duration_cv"])
    toward_good = np.where(maximize, 1.0, -1.0) * band
    best_case = values * (1 + toward_good)
    worst_case = values * (1 - toward_good)
    chosen = []
    for i, trial in enumerate(trials):
        others = np.delete(worst_case, i, axis=0)
        if not dominated(best_case[i], others, maximize):
            chosen.append(trial)
    return chosen
