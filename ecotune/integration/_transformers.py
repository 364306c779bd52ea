"""``HFEnergyCallback``: ecotune's per-epoch API as a Hugging Face ``TrainerCallback``."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from typing import TYPE_CHECKING, Any

try:
    from transformers import Trainer, TrainerCallback
except ImportError as err:
    raise ImportError("ecotune.integration.HFEnergyCallback needs transformers and "
                      "accelerate: pip install 'ecotune[transformers]'") from err

from ecotune import names
from ecotune.search import MeasurementWindow, measure

if TYPE_CHECKING:
    import optuna

__all__ = ["HFEnergyCallback"]

# The callback whose window is open in this thread. The Trainer has no event for an error
# in train(): a window it left open is closed when the thread's next training starts, so
# it does not stay open on the shared meter (where it would take a share of every later
# window's readings).
_open_here = threading.local()


class HFEnergyCallback(TrainerCallback):
    """Measure a ``Trainer.train`` as ``trial``'s measurement window.

    Each evaluation during training is a learning-curve point (its number, 1, 2, ...,
    with the Trainer's step, epoch and ``eval_loss`` beside it), with the logged metric
    ``metric`` as its accuracy; the energy so far is added to the evaluation's metrics as
    ``energy_j``, so ``compute_objective`` can return it. When the study's rules
    (energy-aware early stopping, the trial energy budget) say stop, the Trainer stops
    after that evaluation (``control.should_training_stop``); a trial energy-aware early
    stopping or successive halving stopped then ends pruned (``optuna.TrialPruned`` from
    ``train``) where the study's ``on_stop`` is ``"prune"`` (the default). After ``train``,
    ``callback.window`` holds the figures and the curve; the trial has the attributes
    every ecotune trial has.

    Args:
        trial: the Optuna trial (a plain objective that builds a Trainer). None: the
            trial ``trainer.hyperparameter_search(backend="optuna")`` trains, which the
            Trainer passes to its own ``train(trial=...)``.
        metric: the evaluation metric to report, higher is better, as the Trainer logs
            it (``"eval_accuracy"`` for a ``compute_metrics`` returning ``accuracy``).
        inference_sample: validation inputs (one batch tensor, the model's first
            argument): after training, :meth:`~ecotune.MeasurementWindow.record_model`
            runs on them (the hardware-model estimates; measured too with
            ``measure_inference=True``), in a window of its own.
        measure_inference: measure the trained model's inference energy on
            ``inference_sample`` (the ``inference_energy_measured_j`` objective).
        **measure_options: passed to :func:`ecotune.measure` (``meter``, ``country``,
            ...). ``epochs`` (the planned evaluations) defaults to what the training
            arguments plan: the epochs with ``eval_strategy="epoch"``, the steps over
            ``eval_steps`` with ``"steps"``; ``device`` to the Trainer's.

    Raises:
        TypeError: ``trial`` is neither None nor an Optuna trial.
        ValueError: at ``train``: no trial (none given, and not inside a
            ``hyperparameter_search``), training arguments that never evaluate during
            training, or an evaluation without ``metric`` (the error names the metrics
            it logged; the trial fails, its energy so far recorded).
    """

    def __init__(self, trial: optuna.trial.BaseTrial | None = None,
                 metric: str = "eval_accuracy", *, inference_sample: Any = None,
                 measure_inference: bool = False, **measure_options: Any) -> None:
        import optuna

        if trial is not None and not isinstance(trial, optuna.trial.BaseTrial):
            raise TypeError(f"HFEnergyCallback: trial must be an Optuna trial or None "
                            f"(inside trainer.hyperparameter_search); got "
                            f"{type(trial).__name__}")
        if measure_inference and inference_sample is None:
            raise ValueError("HFEnergyCallback: measure_inference=True needs an "
                             "inference_sample (one batch of validation inputs)")
        self.trial = trial
        self.metric = metric
        self.inference_sample = inference_sample
        self.measure_inference = measure_inference
        self.measure_options = measure_options
        self.window: MeasurementWindow | None = None
        self._stack: contextlib.ExitStack | None = None
        self._last_step: int | None = None

    # -- the Trainer's events ---------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        trial = self.trial if self.trial is not None else _search_trial()
        if trial is None:
            raise ValueError("HFEnergyCallback outside an Optuna trial: pass the trial, "
                             "HFEnergyCallback(trial, ...), or train inside "
                             "trainer.hyperparameter_search(backend=\"optuna\")")
        planned = _planned_evaluations(args, state)
        options = dict(self.measure_options)
        options.setdefault("epochs", planned)
        options.setdefault("device", str(args.device))
        left = getattr(_open_here, "callback", None)
        if left is not None:
            left._abandon()
        self._last_step = None
        self._stack = contextlib.ExitStack()
        self.window = self._stack.enter_context(measure(trial, **options))
        _open_here.callback = self

    def on_evaluate(self, args, state, control, metrics=None, **kwargs) -> None:
        window = self.window
        if self._stack is None or window is None or metrics is None \
                or state.global_step == self._last_step:
            return  # after training (trainer.evaluate()), or a second eval data set
        if self.metric not in metrics:
            error = ValueError(f"HFEnergyCallback: the Trainer never logged the metric "
                               f"{self.metric!r}; it logged {sorted(metrics)}")
            self._close(error)
            raise error
        self._last_step = state.global_step
        extra = {"step": state.global_step}
        if state.epoch is not None:
            extra["trainer_epoch"] = float(state.epoch)
        loss = metrics.get("eval_loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            extra["val_loss"] = float(loss)
        window.report(len(window.curve) + 1, float(metrics[self.metric]), **extra)
        metrics[names.ATTR_ENERGY] = window.curve[-1].energy_j  # for compute_objective
        if window.should_stop():
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kwargs) -> None:
        if self._stack is None:
            return
        self._close(None)
        window = self.window
        if self.inference_sample is not None and model is not None:
            window.record_model(model, self.inference_sample,
                                measure_inference=self.measure_inference)
        if window.stop_reason in (names.STOP_ENERGY_AWARE, names.STOP_SUCCESSIVE_HALVING) \
                and window.rules.early_stopping.on_stop == "prune":
            import optuna

            # As the built-in trainer does: the study's [early_stopping] on_stop says a
            # stopped trial ends pruned (a budget stop ends complete and infeasible).
            raise optuna.TrialPruned(f"{window.stop_reason} after evaluation "
                                     f"{len(window.curve)}")

    # -- helpers ----------------------------------------------------------------------

    def _abandon(self) -> None:
        """Close a window a raising ``train()`` left open; its trial has finished (failed),
        so what cannot be recorded on it any more is dropped."""
        with contextlib.suppress(Exception):
            self._close(RuntimeError("training raised before on_train_end"))
        self._stack = None

    def _close(self, error: BaseException | None) -> None:
        if self._stack is None:
            return
        stack, self._stack = self._stack, None
        if getattr(_open_here, "callback", None) is self:
            _open_here.callback = None
        if error is None:
            stack.close()
        else:
            with contextlib.suppress(type(error)):
                stack.__exit__(type(error), error, error.__traceback__)


def _search_trial() -> optuna.trial.BaseTrial | None:
    """The Optuna trial the running ``Trainer.train(trial=...)`` was given (as
    ``hyperparameter_search`` calls it), from the caller frames: the callback is built
    before the search and the Trainer passes its events no trial."""
    import optuna

    frame = sys._getframe(1)
    while frame is not None:
        local = frame.f_locals
        if isinstance(local.get("self"), Trainer) and "trial" in local:
            trial = local["trial"]
            return trial if isinstance(trial, optuna.trial.BaseTrial) else None
        frame = frame.f_back
    return None


def _planned_evaluations(args, state) -> int:
    """Evaluations the training arguments plan during training."""
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    if strategy == "epoch":
        return max(1, math.ceil(state.num_train_epochs))
    if strategy == "steps":
        every = state.eval_steps or args.eval_steps
        return max(1, state.max_steps // int(every))
    raise ValueError(f"HFEnergyCallback needs evaluations during training: "
                     f"TrainingArguments(eval_strategy=\"epoch\" or \"steps\"); got "
                     f"eval_strategy={strategy!r}")
