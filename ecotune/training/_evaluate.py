"""Evaluation of a trained model: accuracy and hidden-activation density."""

from __future__ import annotations

import math

import torch
from torch import nn

from ecotune.energy.hardware import NONZERO_THRESHOLD
from ecotune.knobs import hidden_activation_modules

__all__ = ["accuracy", "accuracy_and_density", "activation_density", "EVAL_BATCH"]

#: Inputs per forward pass when evaluating.
EVAL_BATCH = 1024


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode)."""
    model.eval()
    correct = sum(int((model(x[i:i + EVAL_BATCH]).argmax(1) == y[i:i + EVAL_BATCH]).sum())
                  for i in range(0, len(y), EVAL_BATCH))
    return correct / len(y)


@torch.no_grad()
def accuracy_and_density(model: nn.Module, x: torch.Tensor,
                         y: torch.Tensor) -> tuple[float, float]:
    """Accuracy on ``(x, y)`` and the fraction of hidden activations that are non-zero,
    from one pass (eval mode): the trial's last work inside its measurement window, so
    kept to one pass.

    The density is what EAT lowers; 1 - density is the activation sparsity.
    """
    model.eval()
    counts = [0, 0]  # non-zero, total

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        counts[0] += int((output.abs() > NONZERO_THRESHOLD).sum())
        counts[1] += output.numel()

    handles = [m.register_forward_hook(hook) for m in hidden_activation_modules(model)]
    correct = 0
    try:
        for i in range(0, len(x), EVAL_BATCH):
            correct += int((model(x[i:i + EVAL_BATCH]).argmax(1) == y[i:i + EVAL_BATCH]).sum())
    finally:
        for handle in handles:
            handle.remove()
    return correct / len(y), counts[0] / counts[1] if counts[1] else math.nan


def activation_density(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of hidden activations that are non-zero on ``x`` (eval mode)."""
    return accuracy_and_density(model, x, torch.zeros(len(x), dtype=torch.long))[1]
