"""One epoch of a learning curve, and the watchers that read it after every epoch.

The per-epoch protocol every training loop shares, the built-in trainer and a user's own
loop alike (:meth:`ecotune.MeasurementWindow.report`): after each epoch an
:class:`EpochRecord` is handed to each watcher in turn; a watcher that wants training to
end raises :class:`StopTraining` with a reason. Watchers: patience early stopping
(:mod:`ecotune.training`), the per-trial energy budget and energy-aware early stopping
(:mod:`ecotune.search`).

No third-party imports: every layer may use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["EpochRecord", "StopTraining", "EpochWatcher", "notify"]


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a watcher to end training after the current epoch, with a reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One epoch of the learning curve.

    ``epoch`` counts from 1; ``energy_j`` is cumulative since training began (None
    without an energy reading); ``elapsed_s`` likewise; ``decisions`` lists the runtime
    decisions taken at this epoch (``"freeze"``, ``"low_precision"``); ``extra`` holds any
    other per-epoch values a loop reports (a validation loss, say).
    """

    epoch: int
    train_loss: float | None
    val_accuracy: float
    elapsed_s: float
    energy_j: float | None = None
    decisions: tuple[str, ...] = ()
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def as_attr(self) -> dict[str, Any]:
        """The record as the JSON-safe dict stored in the ``training`` attribute's
        ``learning_curve`` (extra values flattened beside the fixed ones).

        Example:
            >>> EpochRecord(1, 0.5, 0.8, 1.0, 2.0, extra={"val_loss": 0.4}).as_attr()
            ... # doctest: +NORMALIZE_WHITESPACE
            {'epoch': 1, 'train_loss': 0.5, 'val_accuracy': 0.8, 'elapsed_s': 1.0,
             'energy_j': 2.0, 'decisions': [], 'val_loss': 0.4}
        """
        # Spelled out (the fields in order): a trial builds one per epoch of its curve.
        record = {"epoch": self.epoch, "train_loss": self.train_loss,
                  "val_accuracy": self.val_accuracy, "elapsed_s": self.elapsed_s,
                  "energy_j": self.energy_j, "decisions": list(self.decisions)}
        if self.extra:
            record.update(self.extra)
        return record


#: A watcher: called with each epoch's record; raises StopTraining to end training.
EpochWatcher = Callable[[EpochRecord], None]


def notify(watchers: Iterable[EpochWatcher], record: EpochRecord) -> str | None:
    """Hand ``record`` to every watcher in order; the first stop reason, or None.

    Watchers after the one that stopped are not called: training ends anyway.

    Example:
        >>> def tired(record):
        ...     if record.epoch >= 2:
        ...         raise StopTraining("tired")
        >>> [notify([tired], EpochRecord(t, None, 0.5, 0.0)) for t in (1, 2)]
        [None, 'tired']
    """
    for watch in watchers:
        try:
            watch(record)
        except StopTraining as stop:
            return stop.reason
    return None
