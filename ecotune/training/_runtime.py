"""Runtime decisions during training (Reguero et al. 2024, METHODS.md section 5).

- ``freeze_at_epoch = k``: from epoch k on, every parameter but the last layer's is frozen
  (and BatchNorm statistics stop updating), so backward stops at the last layer.
- ``low_precision_at_epoch = k``: from epoch k on, forward passes run under autocast:
  bfloat16 on the CPU, float16 on a GPU.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["RuntimeDecisions", "freeze_all_but_last"]


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


class RuntimeDecisions:
    """Applies the planned decisions at the start of each epoch and says which it took."""

    def __init__(self, model: nn.Module, freeze_at_epoch: int | None,
                 low_precision_at_epoch: int | None, device_type: str = "cpu") -> None:
        self.model = model
        self.freeze_at_epoch = freeze_at_epoch
        self.low_precision_at_epoch = low_precision_at_epoch
        self.device_type = device_type
        self.frozen = self.low_precision = False

    def start_epoch(self, epoch: int) -> tuple[str, ...]:
        """Put the model in training mode for ``epoch``; the decisions taken at it."""
        decisions = []
        if not self.frozen and self.freeze_at_epoch is not None \
                and epoch >= self.freeze_at_epoch:
            freeze_all_but_last(self.model)
            self.frozen = True
            decisions.append("freeze")
        if not self.low_precision and self.low_precision_at_epoch is not None \
                and epoch >= self.low_precision_at_epoch:
            self.low_precision = True
            decisions.append("low_precision")
        self.model.train()
        if self.frozen:
            _set_bn_eval(self.model)
        return tuple(decisions)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast once low precision is on; a no-op before."""
        if not self.low_precision:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.device_type == "cpu" else torch.float16
        return torch.autocast(device_type=self.device_type, dtype=dtype)
