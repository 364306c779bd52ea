"""The built-in train/evaluate loop: applies the knobs, reports a learning curve.

Knows nothing of Optuna or meters: the search layer wraps :func:`train` in a measurement
window, passes a function that reads the window's energy so far (for the per-epoch energy
of the learning curve), and turns the :class:`TrainResult` into trial values and
attributes. Whoever watches the curve (an energy budget, an early stopper) ends training
by raising :class:`StopTraining` from ``on_epoch``.

Runtime decisions (Reguero et al. 2024, METHODS.md section 5), each recorded in the curve:

- ``freeze_at_epoch = k``: from epoch k on, every parameter but the last layer's is frozen
  (and BatchNorm statistics stop updating), so backward stops at the last layer.
- ``low_precision_at_epoch = k``: from epoch k on, forward passes run under autocast:
  bfloat16 on the CPU, float16 on a GPU.
- ``early_stopping_patience = p``: training stops once validation accuracy has not
  improved for p epochs; the weights of the best epoch are restored.

Energy budget (Yang et al. 2019, METHODS.md section 2): with ``energy_budget = f`` the
weights are projected every ``budget_every_batches`` steps so that the model's estimated
inference energy stays within f x the dense model's (:mod:`ecotune.knobs.budget`); the
final model is projected onto f exactly, and its validation accuracy measured after that.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ecotune.data import DataSplits
from ecotune.knobs import EATPenalty, hidden_activation_modules
from ecotune.knobs.budget import EnergyBudgetProjector, input_mask
from ecotune.models import build_model, count_macs, count_parameters

__all__ = ["TrainConfig", "TrainResult", "EpochRecord", "StopTraining", "train", "accuracy",
           "activation_density", "freeze_all_but_last", "NONZERO_THRESHOLD"]

#: A value counts as non-zero when |x| > 2^-126 (the smallest normal float32), as in EAT.
NONZERO_THRESHOLD = 2.0**-126
_EVAL_BATCH = 1024


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from ``on_epoch`` to end training after the current epoch, with a reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. Read back with ``dataclasses.asdict``."""

    model: str = "cnn"
    width: float = 1.0
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "adam"
    weight_decay: float = 0.0
    eat_lambda: float = 0.0
    eat_sigma: float = 1e-4
    freeze_at_epoch: int | None = None
    low_precision_at_epoch: int | None = None
    early_stopping_patience: int | None = None
    energy_budget: float | None = None
    budget_every_batches: int = 10
    budget_schedule: str = "none"
    budget_warmup_epochs: int = 1
    input_keep_ratio: float | None = None
    threads: int = 1

#: Inputs on which the energy-budget projection prices the model.
BUDGET_SAMPLE = 64


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """One epoch of the learning curve. ``energy_j`` is cumulative since training began
    (None without an energy reading); ``decisions`` lists what changed at this epoch."""

    epoch: int
    train_loss: float
    val_accuracy: float
    elapsed_s: float
    energy_j: float | None = None
    decisions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced. ``val_accuracy`` is the search's accuracy (of the
    best epoch when early stopping restored it); the test split was used for nothing but
    ``test_accuracy``."""

    val_accuracy: float
    test_accuracy: float
    activation_density: float
    n_params: int
    macs: int
    epochs_run: int
    stop_reason: str
    curve: tuple[EpochRecord, ...]
    model: nn.Module = dataclasses.field(repr=False, compare=False)
    #: 0/1 mask the inputs are multiplied by (input masking), or None.
    input_mask: torch.Tensor | None = dataclasses.field(default=None, repr=False,
                                                        compare=False)
    #: Estimated inference energy over the dense model's (Eyeriss model), with a budget.
    budget_energy_ratio: float | None = None


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected sgd, adam or adamw")


def freeze_all_but_last(model: nn.Module) -> nn.Module:
    """Stop gradients to every parameter but the last layer's, and freeze BatchNorm
    statistics. Returns the layer left trainable."""
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    keep = {id(p) for p in last.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return last


def _set_bn_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _autocast(device_type: str) -> contextlib.AbstractContextManager:
    dtype = torch.bfloat16 if device_type == "cpu" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def train(
    data: DataSplits,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    energy_so_far_j: Callable[[], float] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``data.train``, tracking accuracy on ``data.val``.

    The same ``seed`` gives the same initial weights and batch order. ``on_epoch`` is
    called after every epoch; raising :class:`StopTraining` from it ends training there.
    ``energy_so_far_j`` returns the energy spent since training began (it is called once
    per epoch, for the learning curve).

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
    mask = (input_mask(data.x_train, config.input_keep_ratio)
            if config.input_keep_ratio is not None else None)
    if mask is not None:
        data = dataclasses.replace(data, x_train=data.x_train * mask, x_val=data.x_val * mask,
                                   x_test=data.x_test * mask)
    projector = (EnergyBudgetProjector(model, data.x_train[:BUDGET_SAMPLE], config.energy_budget,
                                       config.budget_every_batches, config.budget_schedule,
                                       config.budget_warmup_epochs)
                 if config.energy_budget is not None else None)
    optimizer = _optimizer(config, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    batch_order = torch.Generator().manual_seed(seed)
    n_train = len(data.y_train)
    n_batches = math.ceil(n_train / config.batch_size)
    curve: list[EpochRecord] = []
    stop_reason = "completed"
    best_accuracy, best_state, since_best = -1.0, None, 0
    frozen = low_precision = False
    t0_s = time.perf_counter()
    with EATPenalty(model, config.eat_lambda, config.eat_sigma) as eat:
        for epoch in range(1, config.epochs + 1):
            decisions: list[str] = []
            if config.freeze_at_epoch is not None and epoch >= config.freeze_at_epoch \
                    and not frozen:
                freeze_all_but_last(model)
                frozen = True
                decisions.append("freeze")
            if config.low_precision_at_epoch is not None \
                    and epoch >= config.low_precision_at_epoch and not low_precision:
                low_precision = True
                decisions.append("low_precision")
            model.train()
            if frozen:
                _set_bn_eval(model)
            order = torch.randperm(n_train, generator=batch_order)
            loss_sum, n_seen = 0.0, 0
            for batch, start in enumerate(range(0, n_train, config.batch_size)):
                idx = order[start:start + config.batch_size]
                x, y = data.x_train[idx], data.y_train[idx]
                with _autocast("cpu") if low_precision else contextlib.nullcontext():
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
            val_accuracy = accuracy(model, data.x_val, data.y_val)
            if val_accuracy > best_accuracy:
                best_accuracy, since_best = val_accuracy, 0
                if config.early_stopping_patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
            patience_out = (config.early_stopping_patience is not None
                            and since_best >= config.early_stopping_patience
                            and epoch < config.epochs)
            if patience_out:
                decisions.append("early_stop")
            record = EpochRecord(
                epoch, loss_sum / n_seen, val_accuracy, time.perf_counter() - t0_s,
                None if energy_so_far_j is None else energy_so_far_j(), tuple(decisions))
            curve.append(record)
            if on_epoch is not None:
                try:
                    on_epoch(record)
                except StopTraining as stop:
                    stop_reason = stop.reason
                    break
            if patience_out:
                stop_reason = "early_stopping"
                break
    if best_state is not None:
        model.load_state_dict(best_state)  # early stopping keeps the best epoch's weights
    final_val = best_accuracy if best_state is not None else curve[-1].val_accuracy
    budget_ratio = None
    if projector is not None:
        budget_ratio = projector.finish() / projector.dense_energy_
        final_val = accuracy(model, data.x_val, data.y_val)  # of the projected model
    return TrainResult(
        val_accuracy=final_val,
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        activation_density=activation_density(model, data.x_test),
        n_params=count_parameters(model),
        macs=macs,
        epochs_run=len(curve),
        stop_reason=stop_reason,
        curve=tuple(curve),
        model=model,
        input_mask=mask,
        budget_energy_ratio=budget_ratio,
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode)."""
    model.eval()
    correct = sum(int((model(x[i:i + _EVAL_BATCH]).argmax(1) == y[i:i + _EVAL_BATCH]).sum())
                  for i in range(0, len(y), _EVAL_BATCH))
    return correct / len(y)


@torch.no_grad()
def activation_density(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of hidden activations that are non-zero on ``x`` (eval mode).

    This is what EAT lowers; 1 - density is the activation sparsity.
    """
    model.eval()
    counts = [0, 0]  # non-zero, total

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        counts[0] += int((output.abs() > NONZERO_THRESHOLD).sum())
        counts[1] += output.numel()

    handles = [m.register_forward_hook(hook) for m in hidden_activation_modules(model)]
    try:
        for i in range(0, len(x), _EVAL_BATCH):
            model(x[i:i + _EVAL_BATCH])
    finally:
        for handle in handles:
            handle.remove()
    return counts[0] / counts[1] if counts[1] else math.nan
