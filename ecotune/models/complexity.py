"""Parameter and multiply-accumulate (MAC) counts of a model, measured by running it."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_parameters", "count_macs"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs of one forward pass of one input, by layer type (``conv``, ``linear``) and
    ``total``. Counted from the real output sizes, so strides, padding and groups count.

    Example:
        >>> count_macs(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)),
        ...            (1, 4, 4))
        {'conv': 72, 'linear': 24, 'total': 96}
    """
    counts = {"conv": 0, "linear": 0}

    def conv_hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        per_output = module.in_channels // module.groups * kh * kw
        counts["conv"] += output[0].numel() * per_output

    def linear_hook(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        counts["linear"] += output[0].numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {**counts, "total": counts["conv"] + counts["linear"]}
