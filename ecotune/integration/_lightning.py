"""``EnergyCallback``: ecotune's per-epoch API as a PyTorch Lightning callback."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

try:  # the unified package first, then the standalone one
    from lightning.pytorch import Callback
except ImportError:
    try:
        from pytorch_lightning import Callback
    except ImportError as err:
        raise ImportError("ecotune.integration.EnergyCallback needs PyTorch Lightning: "
                          "pip install 'ecotune[lightning]'") from err

from ecotune.search import MeasurementWindow, measure

if TYPE_CHECKING:
    import optuna

__all__ = ["EnergyCallback"]


class EnergyCallback(Callback):
    """Measure a Lightning ``fit`` as ``trial``'s measurement window.

    Each validation epoch (sanity checks excluded) is reported with the logged metric
    ``monitor`` as its accuracy; when the study's rules (energy-aware early stopping,
    the trial energy budget) say stop, the Trainer stops after that epoch. After ``fit``,
    ``callback.window`` holds the figures (``energy_j``, ...) and the learning curve.

    Args:
        trial: the Optuna trial of an ecotune (or plain Optuna) study.
        monitor: the logged validation metric to report, higher is better (e.g.
            ``"val_acc"``).
        **measure_options: passed to :func:`ecotune.measure` (``meter``, ``country``,
            ...). ``epochs`` defaults to the Trainer's ``max_epochs``.

    Example (not run here)::

        callback = EnergyCallback(trial, monitor="val_acc")
        trainer = Trainer(max_epochs=10, callbacks=[callback])
        trainer.fit(model, train_loader, val_loader)
        return callback.window.accuracy, callback.window.energy_j
    """

    def __init__(self, trial: optuna.trial.BaseTrial, monitor: str = "val_acc",
                 **measure_options: Any) -> None:
        self.trial = trial
        self.monitor = monitor
        self.measure_options = measure_options
        self.window: MeasurementWindow | None = None
        self._stack: contextlib.ExitStack | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        options = dict(self.measure_options)
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            options.setdefault("epochs", trainer.max_epochs)
        self._stack = contextlib.ExitStack()
        self.window = self._stack.enter_context(measure(self.trial, **options))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.window is None or self._stack is None:
            return
        if self.monitor not in trainer.callback_metrics:
            raise KeyError(f"EnergyCallback: the metric {self.monitor!r} was not logged; "
                           f"logged: {sorted(trainer.callback_metrics)}")
        self.window.report(trainer.current_epoch + 1,
                           float(trainer.callback_metrics[self.monitor]))
        if self.window.should_stop():
            trainer.should_stop = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self._close(None)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close(exception)

    def _close(self, error: BaseException | None) -> None:
        if self._stack is None:
            return
        stack, self._stack = self._stack, None
        if error is None:
            stack.close()
        else:
            with contextlib.suppress(type(error)):
                stack.__exit__(type(error), error, error.__traceback__)
