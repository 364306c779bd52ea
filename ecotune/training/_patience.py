"""Patience early stopping as an epoch watcher: stop once validation accuracy has not
improved for ``patience`` epochs, and give back the best epoch's weights."""

from __future__ import annotations

import copy

from torch import nn

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.names import STOP_PATIENCE

__all__ = ["PatienceStopping"]


class PatienceStopping:
    """An epoch watcher that keeps the best epoch's weights and stops after ``patience``
    epochs without improvement (never after the last planned epoch: nothing to save), with
    the stop reason :data:`ecotune.names.STOP_PATIENCE`."""

    def __init__(self, model: nn.Module, patience: int, planned_epochs: int) -> None:
        self.model = model
        self.patience = patience
        self.planned_epochs = planned_epochs
        self.best_accuracy_ = -1.0
        self.best_state_: dict | None = None
        self._since_best = 0

    def __call__(self, record: EpochRecord) -> None:
        if record.val_accuracy > self.best_accuracy_:
            self.best_accuracy_, self._since_best = record.val_accuracy, 0
            self.best_state_ = copy.deepcopy(self.model.state_dict())
        else:
            self._since_best += 1
        if self._since_best >= self.patience and record.epoch < self.planned_epochs:
            raise StopTraining(STOP_PATIENCE)

    def restore_best(self) -> float:
        """Load the best epoch's weights into the model; its validation accuracy."""
        if self.best_state_ is not None:
            self.model.load_state_dict(self.best_state_)
        return self.best_accuracy_
