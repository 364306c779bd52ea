"""Energy-aware early stopping for multi-objective studies.

Optuna cannot prune multi-objective studies (``Trial.report`` raises there), so ecotune
watches each trial's learning curve itself. After every epoch, :func:`predict_final`
predicts where the trial will end, as (validation accuracy, training energy); if a trial
already on the study's Pareto front beats that predicted point by a margin in both, the
rest of the training cannot buy a point on the front, and training stops.

The predictor (after Reguero et al. 2024, Computer Standards & Interfaces, simplified):

- energy: the energy spent so far plus, for each remaining epoch, the mean energy of a
  full-precision unfrozen epoch times the mode multiplier of that epoch (0.77 once frozen,
  0.93 in low precision, the paper's figures), so a planned freeze or precision switch is
  priced in;
- accuracy: a saturating power law ``acc(t) = a - b * t^-c`` fitted by least squares to
  the recent half of the validation accuracies so far (at least three epochs; the
  exponent ``c`` the best of :data:`ACCURACY_EXPONENTS`, ``a`` and ``b`` linear given
  it) and read at the planned last epoch, clipped to the range between the best accuracy
  seen and 1; with two epochs seen, ``a - b / t`` through both. (The paper fits an
  autoregressive model on the last four epochs. A fit over the whole curve is held back
  by the first epochs and read slow learners as saturated: on two 27-epoch tables, 8.0 %
  and 5.2 % mean error at half of training seen against 5.8 % and 3.1 % for the recent
  power law; docs/searching.md.)

Every prediction is stored on the trial, so its error can be measured on the trials that
ran to the end (:func:`ecotune.report.prediction_errors`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import optuna

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import STOP_ENERGY_AWARE
from ecotune.pareto import ParetoFront, is_feasible, non_dominated
from ecotune.rules._stored import study_metric_names
from ecotune.storage import TrialCursor

__all__ = ["Prediction", "predict_final", "EnergyAwareStopper", "study_front",
           "study_dominates", "FREEZE_ENERGY_MULTIPLIER", "LOW_PRECISION_ENERGY_MULTIPLIER"]

FREEZE_ENERGY_MULTIPLIER = 0.77
LOW_PRECISION_ENERGY_MULTIPLIER = 0.93
#: The exponents ``c`` of ``acc(t) = a - b * t^-c`` the accuracy fit chooses from: small
#: ones for curves still climbing, large ones for curves that have flattened.
ACCURACY_EXPONENTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
_EXPONENTS = np.array(ACCURACY_EXPONENTS)
#: A stopper reads the study's front again at most this often (seconds).
FRONT_REFRESH_S = 1.0


class Prediction(NamedTuple):
    epoch: int  # the epoch after which the prediction was made
    accuracy: float  # predicted validation accuracy at the planned last epoch
    energy_j: float  # predicted cumulative training energy at the planned last epoch


def _multiplier(epoch: int, freeze_at: int | None, low_precision_at: int | None) -> float:
    m = 1.0
    if freeze_at is not None and epoch >= freeze_at:
        m *= FREEZE_ENERGY_MULTIPLIER
    if low_precision_at is not None and epoch >= low_precision_at:
        m *= LOW_PRECISION_ENERGY_MULTIPLIER
    return m


def predict_final(curve: Sequence[EpochRecord], planned_epochs: int,
                  freeze_at_epoch: int | None = None,
                  low_precision_at_epoch: int | None = None) -> Prediction:
    """Predict validation accuracy and cumulative energy at ``planned_epochs``.

    Example:
        >>> curve = [EpochRecord(t, 0.0, 0.9 - 0.4 / t, 0.0, energy_j=2.0 * t)
        ...          for t in (1, 2, 3)]
        >>> p = predict_final(curve, planned_epochs=10)
        >>> round(p.accuracy, 3), round(p.energy_j, 3)
        (0.86, 20.0)
    """
    if not curve or curve[-1].energy_j is None:
        raise ValueError("predict_final needs a curve whose epochs carry energy_j")
    epochs = np.array([r.epoch for r in curve], dtype=float)
    accuracies = np.array([r.val_accuracy for r in curve])
    spent_j = float(curve[-1].energy_j)
    weights = sum(_multiplier(int(t), freeze_at_epoch, low_precision_at_epoch) for t in epochs)
    per_full_epoch_j = spent_j / weights
    remaining = range(int(epochs[-1]) + 1, planned_epochs + 1)
    energy_j = spent_j + per_full_epoch_j * sum(
        _multiplier(t, freeze_at_epoch, low_precision_at_epoch) for t in remaining)
    accuracy = _fit_accuracy(epochs, accuracies, planned_epochs)
    accuracy = float(np.clip(accuracy, accuracies.max(), 1.0))
    return Prediction(int(epochs[-1]), accuracy, energy_j)


def _power_fits(epochs: np.ndarray, accuracies: np.ndarray, exponents: np.ndarray,
                at: float) -> tuple[np.ndarray, np.ndarray]:
    """``a - b * t^-c`` fitted by least squares for each exponent ``c`` at once: the
    values at ``at`` and the squared errors, one per exponent."""
    x = -epochs[None, :] ** -exponents[:, None]  # one row of regressors per exponent
    x_mean, y_mean = x.mean(axis=1), accuracies.mean()
    dx = x - x_mean[:, None]
    b = (dx @ (accuracies - y_mean)) / np.maximum((dx ** 2).sum(axis=1), 1e-300)
    a = y_mean - b * x_mean
    errors = ((a[:, None] + b[:, None] * x - accuracies[None, :]) ** 2).sum(axis=1)
    return a - b * at ** -exponents, errors


def _fit_accuracy(epochs: np.ndarray, accuracies: np.ndarray, planned: int) -> float:
    """The accuracy the curve so far reaches at ``planned`` (before clipping)."""
    if len(epochs) < 2:
        return float(accuracies[-1])
    if len(epochs) < 3:
        return float(_power_fits(epochs, accuracies, np.array([1.0]), planned)[0][0])
    k = max(3, (len(epochs) + 1) // 2)  # the recent half: the first epochs mislead
    values, errors = _power_fits(epochs[-k:], accuracies[-k:], _EXPONENTS, planned)
    return float(values[int(np.argmin(errors))])


class EnergyAwareStopper:
    """An ``on_epoch`` watcher that stops training when the predicted final point is
    dominated, by ``margin``, by a trial on the study's current Pareto front.

    Dominated by a margin: some front trial has accuracy >= predicted + margin and energy
    <= predicted x (1 - margin).
    """

    def __init__(self, study: optuna.Study, planned_epochs: int, margin: float = 0.01,
                 min_epochs: int = 2, freeze_at_epoch: int | None = None,
                 low_precision_at_epoch: int | None = None) -> None:
        names = study_metric_names(study) or []
        if "accuracy" not in names or "energy_j" not in names:
            raise ValueError("energy-aware early stopping needs objectives named accuracy "
                             f"and energy_j (got {names})")
        self.study = study
        self.planned_epochs = planned_epochs
        self.margin = margin
        self.min_epochs = min_epochs
        self.freeze_at_epoch = freeze_at_epoch
        self.low_precision_at_epoch = low_precision_at_epoch
        self._acc = names.index("accuracy")
        self._energy = names.index("energy_j")
        self.predictions: list[Prediction] = []
        self.stopped_at_epoch: int | None = None
        self._curve: list[EpochRecord] = []
        self._front: np.ndarray | None = None
        self._front_at = 0.0

    def front(self) -> np.ndarray:
        """(accuracy, energy_j) of the study's complete, feasible, non-dominated trials
        (one row per distinct point, by accuracy).

        The front is kept per study object and process, and each refresh adds only the
        trials that finished since the last (:func:`study_front`): the check after an
        epoch costs the same at 10,000 stored trials as at 100. A stopper refreshes it
        at its first check and then at most every ``FRONT_REFRESH_S`` seconds: only
        other workers' trials can finish while this one trains, and short epochs (a few
        ms) should not each pay for storage reads.
        """
        now = time.monotonic()
        if self._front is not None and now - self._front_at < FRONT_REFRESH_S:
            return self._front
        self._front = study_front(self.study, (self._acc, self._energy), (True, False))
        self._front_at = now
        return self._front

    def __call__(self, record: EpochRecord) -> None:
        if record.energy_j is None or record.epoch >= self.planned_epochs:
            return
        self._curve.append(record)
        prediction = predict_final(self._curve, self.planned_epochs, self.freeze_at_epoch,
                                   self.low_precision_at_epoch)
        self.predictions.append(prediction)
        if record.epoch < self.min_epochs:
            return
        front = self.front()
        beaten = ((front[:, 0] >= prediction.accuracy + self.margin)
                  & (front[:, 1] <= prediction.energy_j * (1 - self.margin)))
        if beaten.any():
            self.stopped_at_epoch = record.epoch
            raise StopTraining(STOP_ENERGY_AWARE)

    def record(self) -> dict:
        """What to store on the trial: every prediction, and where training stopped."""
        return {"predictions": [p._asdict() for p in self.predictions],
                "stopped_at_epoch": self.stopped_at_epoch,
                "planned_epochs": self.planned_epochs, "margin": self.margin}


class _StudyFront:
    """The front of one study's complete, feasible trials over some of its objectives,
    brought up to date from the trials that finished since the last update."""

    def __init__(self, study: optuna.Study, columns: Sequence[int],
                 maximize: Sequence[bool]) -> None:
        # A proxy: the front, kept in a weak dictionary by study, must not keep it alive.
        self._cursor = TrialCursor(weakref.proxy(study))
        self._front = ParetoFront(maximize)
        self._columns = list(columns)

    def update(self) -> ParetoFront:
        points = np.array([[t.values[i] for i in self._columns] for t in self._cursor.poll()
                           if t.state == optuna.trial.TrialState.COMPLETE and is_feasible(t)],
                          dtype=float).reshape(-1, len(self._columns))
        # The front ignores non-finite points; of the others, a point another new one
        # dominates never joins it: offer only the new front (a joining worker's first
        # update brings thousands of trials, one vectorized pass instead of an add each).
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) > 1:
            points = points[non_dominated(points, self._front.maximize)]
        for point in points.tolist():
            self._front.add(point)
        return self._front


def _updated_front(study: optuna.Study, columns: Sequence[int],
                   maximize: Sequence[bool]) -> ParetoFront:
    """The study's kept front, brought up to date; the caller holds ``_FRONTS_LOCK``
    while it reads it (another thread's update changes it in place)."""
    key = (tuple(columns), tuple(bool(m) for m in maximize))
    fronts = _FRONTS.setdefault(study, {})
    if key not in fronts:
        fronts[key] = _StudyFront(study, *key)
    return fronts[key].update()


def study_front(study: optuna.Study, columns: Sequence[int],
                maximize: Sequence[bool]) -> np.ndarray:
    """The objective values (``columns``, in that order; ``maximize`` per column) of
    ``study``'s complete, feasible, non-dominated trials now, one row per distinct point.

    Kept per study object and process, each call adding only the trials that finished
    since the last: the same cost at 10,000 stored trials as at 100.
    """
    with _FRONTS_LOCK:
        return _updated_front(study, columns, maximize).points


def study_dominates(study: optuna.Study, point: Sequence[float],
                    maximize: Sequence[bool]) -> bool:
    """Whether a complete, feasible trial of ``study`` dominates ``point`` (one value per
    objective, in the study's order): ``dominated(point, study_front(...))``, from the
    same incrementally kept front, in O(log n) for two objectives (a replay asks it of
    every trial).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9, 5.0]))
        >>> study_dominates(study, [0.8, 6.0], [True, False]), study_dominates(
        ...     study, [0.9, 4.0], [True, False])
        (True, False)
    """
    with _FRONTS_LOCK:
        return _updated_front(study, range(len(point)), maximize).dominates(list(point))


#: Fronts by study object, then by (objective indices, directions); workers in threads
#: may share a study object, hence the lock.
_FRONTS: weakref.WeakKeyDictionary[
    optuna.Study, dict[tuple[tuple[int, ...], tuple[bool, ...]], _StudyFront]] = (
    weakref.WeakKeyDictionary())
_FRONTS_LOCK = threading.Lock()
