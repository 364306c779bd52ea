"""Energy budgets on the search: per trial (a constraint) and per study (a stop).

- :class:`TrialEnergyBudget` watches a trial's learning curve and stops training before an
  epoch that would take the trial past its budget. The trial is then infeasible: its
  constraint ``trial_energy_j`` (Optuna's ``trial.set_constraint``: feasible when <= 0) is
  the projected energy of the full training minus the budget, so it never reaches the
  front, and constraint-aware samplers (TPE, NSGA-II, GP, random) learn to avoid it.
- :func:`search_energy_j` is what one trial cost the search: its training window
  (``energy_j``, the objective: training and per-epoch validation) plus its test-split
  evaluation window (``evaluation_energy_j``, where it had one). Every figure of the
  search's energy (this module's study budget, the report's hypervolume against search
  energy, ``compare``, the replay) adds trials up with it.
- :func:`study_energy_j` adds up the search energy of every trial of a study (complete,
  failed and pruned alike: that energy was spent), kept up to date per study object from
  the trials that finished since the last call; :class:`StudyEnergyBudget` stops the
  study once the sum reaches the budget, so that no new trial starts, and a measurement
  window (``ecotune.measure``) refuses to start a trial then. Both read that one sum.
"""

from __future__ import annotations

import math
import threading
import weakref

import optuna

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import ATTR_ENERGY, ATTR_EVALUATION_ENERGY, STOP_TRIAL_BUDGET
from ecotune.storage import TrialCursor, user_attr

__all__ = ["TrialEnergyBudget", "StudyEnergyBudget", "search_energy_j", "study_energy_j"]


class TrialEnergyBudget:
    """Stop a trial's training before it spends more than ``budget_j`` (an ``on_epoch``
    watcher), and compute its constraint value afterwards.

    Example:
        >>> budget = TrialEnergyBudget(10.0, planned_epochs=5)
        >>> budget(EpochRecord(1, 0.5, 0.8, 1.0, energy_j=4.0))
        >>> budget(EpochRecord(2, 0.4, 0.9, 2.0, energy_j=8.0))
        Traceback (most recent call last):
        ...
        ecotune.epochs.StopTraining: trial_energy_budget
        >>> budget.constraint_j(8.0, epochs_run=2)  # 5 epochs x 4 J - 10 J
        10.0
    """

    def __init__(self, budget_j: float, planned_epochs: int | None) -> None:
        if not budget_j > 0:
            raise ValueError(f"a trial energy budget must be > 0 joules (got {budget_j})")
        self.budget_j = budget_j
        self.planned_epochs = planned_epochs
        self.stopped = False

    def __call__(self, record: EpochRecord) -> None:
        if record.energy_j is None:
            raise ValueError("a trial energy budget needs the energy of every epoch")
        per_epoch_j = record.energy_j / record.epoch
        more_planned = self.planned_epochs is None or record.epoch < self.planned_epochs
        if more_planned and record.energy_j + per_epoch_j > self.budget_j:
            self.stopped = True
            raise StopTraining(STOP_TRIAL_BUDGET)

    def constraint_j(self, energy_j: float, epochs_run: int) -> float:
        """Projected energy of the planned training minus the budget (<= 0: feasible).

        Without planned epochs (an own loop that did not say), a stopped trial is priced
        one epoch past where it stopped: over the budget, so infeasible."""
        if self.stopped:
            planned = self.planned_epochs or epochs_run + 1
            energy_j = energy_j / epochs_run * planned
        return energy_j - self.budget_j


def search_energy_j(trial: optuna.trial.FrozenTrial) -> float | None:
    """What ``trial`` cost the search, joules: its ``energy_j`` (training, with the
    validation of each epoch) plus its ``evaluation_energy_j`` (the test-split evaluation,
    0 where it had none). None where the trial recorded neither.

    Example:
        >>> t = optuna.trial.create_trial(values=[0.9, 10.0], user_attrs={
        ...     "energy_j": 10.0, "evaluation_energy_j": 1.5})
        >>> search_energy_j(t), search_energy_j(optuna.trial.create_trial(values=[0.5, 1.0]))
        (11.5, None)
    """
    # Two numbers, not the trial's every attribute: the first budget check of a worker
    # joining a study reads them from each of its trials.
    training = user_attr(trial, ATTR_ENERGY)
    evaluation = user_attr(trial, ATTR_EVALUATION_ENERGY)
    if training is None and evaluation is None:
        return None
    return float(training or 0.0) + float(evaluation or 0.0)


class _StudyEnergy:
    """The energy one study's trials have recorded, brought up to date from the trials
    that finished since the last read (a :class:`~ecotune.storage.TrialCursor`)."""

    def __init__(self, study: optuna.Study) -> None:
        # A proxy: the sum, kept in a weak dictionary by study, must not keep it alive.
        self._cursor = TrialCursor(weakref.proxy(study))
        self._finished_j = 0.0  # energy of the finished trials the cursor has seen
        self._lock = threading.Lock()  # trials in threads (n_jobs) share a study object

    def spent_j(self) -> float:
        with self._lock:
            # A finished trial's attributes never change: add each once. Unfinished trials
            # are re-read each time (their energy_j appears when their window closes).
            self._finished_j += math.fsum(search_energy_j(t) or 0.0
                                          for t in self._cursor.poll())
            return self._finished_j + math.fsum(search_energy_j(t) or 0.0
                                                for t in self._cursor.unfinished)


#: The energy sum of each study object, kept up to date across calls.
_SPENT: weakref.WeakKeyDictionary[optuna.Study, _StudyEnergy] = weakref.WeakKeyDictionary()
_SPENT_LOCK = threading.Lock()


def study_energy_j(study: optuna.Study) -> float:
    """Search energy (:func:`search_energy_j`: training and test evaluation) of every
    trial of ``study``, joules: complete, failed, pruned and running trials alike.

    The first call on a study object reads the whole study once; later calls read only
    the trials that finished since (and those still running), so a call costs the same at
    10,000 stored trials as at 100, with any number of workers adding trials.

    Example:
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"energy_j": 2.0}))
        >>> study_energy_j(study)
        2.0
        >>> study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"energy_j": 0.5}))
        >>> study_energy_j(study)
        2.5
    """
    with _SPENT_LOCK:
        spent = _SPENT.get(study)
        if spent is None:
            spent = _SPENT[study] = _StudyEnergy(study)
    return spent.spent_j()


class StudyEnergyBudget:
    """A ``study.optimize`` callback: stop the study once it has spent ``budget_j``
    (:func:`study_energy_j`).

    ``reached`` tells afterwards whether the budget ended the run.
    """

    def __init__(self, budget_j: float) -> None:
        if not budget_j > 0:
            raise ValueError(f"a study energy budget must be > 0 joules (got {budget_j})")
        self.budget_j = budget_j
        self.reached = False

    def spent_j(self, study: optuna.Study) -> float:
        """Energy every trial of ``study`` has recorded so far, joules."""
        return study_energy_j(study)

    def exhausted(self, study: optuna.Study) -> bool:
        """Whether the study has already spent its budget (check before starting)."""
        self.reached = self.spent_j(study) >= self.budget_j
        return self.reached

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.exhausted(study):
            study.stop()
