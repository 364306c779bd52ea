"""The built-in trainer: a loop over epochs that applies the knobs, plus epoch watchers.

Knows nothing of Optuna or meters: the search layer wraps :func:`train` in a measurement
window whose per-epoch :meth:`~ecotune.MeasurementWindow.report` is ``train``'s
``on_epoch`` watcher (the same API a user's own training loop calls), and turns the
:class:`TrainResult` into trial values and attributes.

- :mod:`._loop`: :func:`train`, the loop, and :func:`evaluate_test`, the test split's
  one pass (the search runs it in a measurement window of its own, for some trials).
- :mod:`._runtime`: runtime decisions (freeze, low precision) at chosen epochs.
- :mod:`._patience`: patience early stopping, an epoch watcher restoring the best epoch.
- :mod:`._evaluate`: accuracy and activation density.
"""

from __future__ import annotations

from ecotune.epochs import EpochRecord, StopTraining
from ecotune.training._config import TrainConfig, TrainResult
from ecotune.training._evaluate import accuracy, activation_density
from ecotune.training._loop import BUDGET_SAMPLE, evaluate_test, train
from ecotune.training._patience import PatienceStopping
from ecotune.training._runtime import RuntimeDecisions, freeze_all_but_last

__all__ = ["TrainConfig", "TrainResult", "EpochRecord", "StopTraining", "train",
           "evaluate_test", "accuracy",
           "activation_density", "freeze_all_but_last", "PatienceStopping", "RuntimeDecisions",
           "BUDGET_SAMPLE"]
