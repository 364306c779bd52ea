"""Evaluation of a trained model: accuracy and hidden-activation density.

Both run on the model's device (inputs elsewhere are copied there batch by batch) and
count on it, reading the result back once.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ecotune.energy.hardware import NONZERO_THRESHOLD
from ecotune.knobs import hidden_activation_modules

__all__ = ["accuracy", "accuracy_and_density", "activation_density", "EVAL_BATCH"]

#: Inputs per forward pass when evaluating.
EVAL_BATCH = 1024


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             device: torch.device | None = None) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode), on ``device``
    (default: the model's; the trainer passes it, as it runs after every epoch).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> 0.0 <= accuracy(net, torch.rand(10, 1, 2, 2), torch.zeros(10, dtype=torch.long)) <= 1
        True
    """
    model.eval()
    if device is None:
        device = _device_of(model)
    correct: torch.Tensor | int = 0
    with torch.no_grad():
        if len(y) <= EVAL_BATCH:  # one pass, no slices: the per-epoch validation
            correct = (model(x.to(device)).argmax(1) == y.to(device)).sum()
        else:
            for i in range(0, len(y), EVAL_BATCH):
                xb, yb = x[i:i + EVAL_BATCH].to(device), y[i:i + EVAL_BATCH].to(device)
                correct = correct + (model(xb).argmax(1) == yb).sum()
    return int(correct) / len(y)  # one read back, after every pass


@torch.no_grad()
def accuracy_and_density(model: nn.Module, x: torch.Tensor,
                         y: torch.Tensor) -> tuple[float, float]:
    """Accuracy on ``(x, y)`` and the fraction of hidden activations that are non-zero,
    from one pass (eval mode): a trial's whole test-split evaluation, which the search
    measures in a window of its own, so kept to one pass.

    The density is what EAT lowers; 1 - density is the activation sparsity.
    """
    model.eval()
    device = _device_of(model)
    nonzero = torch.zeros((), dtype=torch.int64, device=device)
    total = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal nonzero
        nonzero = nonzero + (output.abs() > NONZERO_THRESHOLD).sum()
        total[0] += output.numel()

    handles = [m.register_forward_hook(hook) for m in hidden_activation_modules(model)]
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for i in range(0, len(x), EVAL_BATCH):
            xb, yb = x[i:i + EVAL_BATCH].to(device), y[i:i + EVAL_BATCH].to(device)
            correct += (model(xb).argmax(1) == yb).sum()
    finally:
        for handle in handles:
            handle.remove()
    return int(correct) / len(y), int(nonzero) / total[0] if total[0] else math.nan


def activation_density(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of hidden activations that are non-zero on ``x`` (eval mode)."""
    return accuracy_and_density(model, x, torch.zeros(len(x), dtype=torch.long,
                                                      device=x.device))[1]
