"""Runtime decisions during training (Reguero et al. 2024; docs/knobs.md).

- ``freeze_at_epoch = k``: from epoch k on, every parameter but the last layer's is frozen
  (and BatchNorm statistics stop updating), so backward stops at the last layer.
- ``low_precision_at_epoch = k``: from epoch k on, forward passes run under autocast:
  bfloat16 on the CPU, float16 on a GPU with a gradient scaler (float16's narrow range
  would flush small gradients to zero without one); bfloat16 on a GPU where it is asked
  for and supported (it needs no scaler).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["RuntimeDecisions", "freeze_all_but_last", "autocast_dtype"]


def autocast_dtype(device_type: str, requested: str = "auto",
                   bf16_supported: bool | None = None) -> torch.dtype:
    """The autocast type for ``requested`` (``"auto"``, ``"float16"``, ``"bfloat16"``) on
    ``device_type``: ``auto`` is bfloat16 on the CPU and float16 on a GPU; bfloat16 on a
    GPU that lacks it (``bf16_supported``, default: ask torch) falls back to float16.

    Example:
        >>> autocast_dtype("cpu"), autocast_dtype("cuda", "auto", bf16_supported=True)
        (torch.bfloat16, torch.float16)
        >>> autocast_dtype("cuda", "bfloat16", bf16_supported=False)
        torch.float16
    """
    if requested not in ("auto", "float16", "bfloat16"):
        raise ValueError(f"unknown low_precision_dtype {requested!r}; expected auto, float16 "
                         "or bfloat16")
    if requested == "auto":
        return torch.bfloat16 if device_type == "cpu" else torch.float16
    if requested == "bfloat16" and device_type == "cuda":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16_supported else torch.float16
    return getattr(torch, requested)


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
                 low_precision_at_epoch: int | None, device_type: str = "cpu",
                 dtype: str = "auto") -> None:
        self.model = model
        self.freeze_at_epoch = freeze_at_epoch
        self.low_precision_at_epoch = low_precision_at_epoch
        self.device_type = device_type
        self.dtype = autocast_dtype(device_type, dtype) if low_precision_at_epoch else None
        self.frozen = self.low_precision = False
        #: The gradient scaler of float16 autocast on a GPU, once low precision is on.
        self.grad_scaler: torch.amp.GradScaler | None = None

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
            if self.device_type == "cuda" and self.dtype == torch.float16:
                self.grad_scaler = torch.amp.GradScaler("cuda")
        self.model.train()
        if self.frozen:
            _set_bn_eval(self.model)
        return tuple(decisions)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast once low precision is on; a no-op before."""
        if not self.low_precision:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass and optimiser step, through the gradient scaler where there is
        one (it skips a step whose scaled gradients overflowed, and adapts the scale)."""
        if self.grad_scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.grad_scaler.scale(loss).backward()
        self.grad_scaler.step(optimizer)
        self.grad_scaler.update()
