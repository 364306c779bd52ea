"""The built-in train/evaluate loop: a loop over epochs plus epoch watchers.

Each epoch: apply the runtime decisions due (:mod:`._runtime`), run the batches (with
EAT's penalty and the energy-budget projection where configured), measure validation
accuracy, and hand the epoch's :class:`~ecotune.epochs.EpochRecord` to the watchers: the
caller's ``on_epoch`` first (in a study, the measurement window's
:meth:`~ecotune.MeasurementWindow.report`, which adds the epoch's energy and applies the
study's energy budget and energy-aware early stopping), then patience early stopping. A
watcher ends training by raising :class:`~ecotune.epochs.StopTraining`.

Energy budget (Yang et al. 2019, METHODS.md section 2): with ``energy_budget = f`` the
weights are projected every ``budget_every_batches`` steps so that the model's estimated
inference energy stays within f x the dense model's (:mod:`ecotune.knobs.budget`); the
final model is projected onto f exactly, and its validation accuracy measured after that.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch import nn

from ecotune.data import DataSplits
from ecotune.epochs import EpochRecord, EpochWatcher, notify
from ecotune.knobs import EATPenalty
from ecotune.knobs.budget import EnergyBudgetProjector, input_mask
from ecotune.models import build_model, count_macs, count_parameters
from ecotune.training._config import TrainConfig, TrainResult
from ecotune.training._evaluate import accuracy, accuracy_and_density
from ecotune.training._patience import PatienceStopping
from ecotune.training._runtime import RuntimeDecisions

__all__ = ["train", "BUDGET_SAMPLE", "COMPLETED"]

#: Inputs on which the energy-budget projection prices the model.
BUDGET_SAMPLE = 64
#: Stop reason of a run that trained every planned epoch.
COMPLETED = "completed"


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected sgd, adam or adamw")


def _masked(data: DataSplits, keep_ratio: float | None) -> tuple[DataSplits, torch.Tensor | None]:
    """``data`` with input masking applied to every split, and the mask (or None)."""
    if keep_ratio is None:
        return data, None
    mask = input_mask(data.x_train, keep_ratio)
    return dataclasses.replace(data, x_train=data.x_train * mask, x_val=data.x_val * mask,
                               x_test=data.x_test * mask), mask


def train(
    data: DataSplits,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: EpochWatcher | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``data.train``, tracking accuracy on ``data.val``.

    The same ``seed`` gives the same initial weights and batch order. ``on_epoch`` is
    called with each epoch's record; raising :class:`~ecotune.epochs.StopTraining` from it
    ends training there, with its reason as ``stop_reason``.

    Raises:
        FloatingPointError: the training loss became NaN or infinite.

    Example:
        >>> from ecotune.data import load_data
        >>> result = train(load_data("digits"), TrainConfig(model="mlp", epochs=2))
        >>> result.epochs_run, result.stop_reason, 0.0 <= result.test_accuracy <= 1.0
        (2, 'completed', True)
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model = build_model(config.model, data.input_shape, data.n_classes, width=config.width)
    macs = count_macs(model, data.input_shape)["total"]
    data, mask = _masked(data, config.input_keep_ratio)
    projector = (EnergyBudgetProjector(model, data.x_train[:BUDGET_SAMPLE], config.energy_budget,
                                       config.budget_every_batches, config.budget_schedule,
                                       config.budget_warmup_epochs)
                 if config.energy_budget is not None else None)
    patience = (PatienceStopping(model, config.early_stopping_patience, config.epochs)
                if config.early_stopping_patience is not None else None)
    watchers = [w for w in (on_epoch, patience) if w is not None]
    runtime = RuntimeDecisions(model, config.freeze_at_epoch, config.low_precision_at_epoch)
    optimizer = _optimizer(config, model.parameters())
    batch_order = torch.Generator().manual_seed(seed)
    curve: list[EpochRecord] = []
    stop_reason = None
    t0_s = time.perf_counter()
    with EATPenalty(model, config.eat_lambda, config.eat_sigma) as eat:
        for epoch in range(1, config.epochs + 1):
            decisions = runtime.start_epoch(epoch)
            train_loss = _train_epoch(model, data, config, epoch, optimizer, eat, runtime,
                                      projector, batch_order)
            record = EpochRecord(epoch, train_loss, accuracy(model, data.x_val, data.y_val),
                                 time.perf_counter() - t0_s, decisions=decisions)
            curve.append(record)
            stop_reason = notify(watchers, record)
            if stop_reason is not None:
                break
    final_val = patience.restore_best() if patience is not None else curve[-1].val_accuracy
    budget_ratio = None
    if projector is not None:
        budget_ratio = projector.finish() / projector.dense_energy_
        final_val = accuracy(model, data.x_val, data.y_val)  # of the projected model
    test_accuracy, density = accuracy_and_density(model, data.x_test, data.y_test)
    return TrainResult(
        val_accuracy=final_val,
        test_accuracy=test_accuracy,
        activation_density=density,
        n_params=count_parameters(model),
        macs=macs,
        epochs_run=len(curve),
        stop_reason=stop_reason or COMPLETED,
        curve=tuple(curve),
        model=model,
        input_mask=mask,
        budget_energy_ratio=budget_ratio,
    )


def _train_epoch(model: nn.Module, data: DataSplits, config: TrainConfig, epoch: int,
                 optimizer: torch.optim.Optimizer, eat: EATPenalty, runtime: RuntimeDecisions,
                 projector: EnergyBudgetProjector | None,
                 batch_order: torch.Generator) -> float:
    """One pass over the training split; the mean training loss."""
    loss_fn = nn.CrossEntropyLoss()
    n_train = len(data.y_train)
    n_batches = math.ceil(n_train / config.batch_size)
    order = torch.randperm(n_train, generator=batch_order)
    loss_sum, n_seen = 0.0, 0
    for batch, start in enumerate(range(0, n_train, config.batch_size)):
        idx = order[start:start + config.batch_size]
        x, y = data.x_train[idx], data.y_train[idx]
        with runtime.autocast():
            loss = loss_fn(model(x), y)
            if eat.active:
                loss = loss + eat.penalty()
        loss_value = loss.item()  # one read per batch serves the check and the sum
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"training loss became {loss_value} at epoch {epoch} "
                f"(lr={config.lr}, optimizer={config.optimizer})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if projector is not None:
            projector.after_step(epoch - 1 + (batch + 1) / n_batches)
        loss_sum += loss_value * len(idx)
        n_seen += len(idx)
    return loss_sum / n_seen
