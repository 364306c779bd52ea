"""The built-in train/evaluate loop: applies the knobs, reports a learning curve.

Knows nothing of Optuna or meters: the search layer wraps :func:`train` in a measurement
window and turns the :class:`TrainResult` into trial values and attributes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ecotune.data import DataSplits
from ecotune.knobs import EATPenalty, hidden_activation_modules
from ecotune.models import build_model, count_parameters

__all__ = ["TrainConfig", "TrainResult", "EpochRecord", "train", "accuracy",
           "activation_density", "NONZERO_THRESHOLD"]

#: A value counts as non-zero when |x| > 2^-126 (the smallest normal float32), as in EAT.
NONZERO_THRESHOLD = 2.0**-126
_EVAL_BATCH = 1024


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
    threads: int = 1


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_accuracy: float
    elapsed_s: float


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced. ``val_accuracy`` is the search's accuracy; the
    test split was used for nothing but ``test_accuracy``."""

    val_accuracy: float
    test_accuracy: float
    activation_density: float
    n_params: int
    epochs_run: int
    stop_reason: str
    curve: tuple[EpochRecord, ...]
    model: nn.Module = dataclasses.field(repr=False, compare=False)


def _optimizer(config: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected sgd, adam or adamw")


def train(
    data: DataSplits,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``data.train``, tracking accuracy on ``data.val``.

    The same ``seed`` gives the same initial weights and batch order. ``on_epoch`` is
    called after every epoch (for progress or early stopping: raising from it ends
    training).

    Raises:
        FloatingPointError: the training loss became NaN or infinite.

    Example:
        >>> from ecotune.data import load_data
        >>> result = train(load_data("digits"), TrainConfig(model="mlp", epochs=2))
        >>> result.epochs_run, 0.0 <= result.test_accuracy <= 1.0
        (2, True)
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model = build_model(config.model, data.input_shape, data.n_classes, width=config.width)
    optimizer = _optimizer(config, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    batch_order = torch.Generator().manual_seed(seed)
    n_train = len(data.y_train)
    curve: list[EpochRecord] = []
    t0_s = time.perf_counter()
    with EATPenalty(model, config.eat_lambda, config.eat_sigma) as eat:
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.randperm(n_train, generator=batch_order)
            loss_sum, n_seen = 0.0, 0
            for start in range(0, n_train, config.batch_size):
                idx = order[start:start + config.batch_size]
                x, y = data.x_train[idx], data.y_train[idx]
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
                loss_sum += loss_value * len(idx)
                n_seen += len(idx)
            record = EpochRecord(epoch, loss_sum / n_seen, accuracy(model, data.x_val, data.y_val),
                                 time.perf_counter() - t0_s)
            curve.append(record)
            if on_epoch is not None:
                on_epoch(record)
    return TrainResult(
        val_accuracy=curve[-1].val_accuracy,
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        activation_density=activation_density(model, data.x_test),
        n_params=count_parameters(model),
        epochs_run=len(curve),
        stop_reason="completed",
        curve=tuple(curve),
        model=model,
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
