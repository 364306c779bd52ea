"""Width-scalable networks of the built-in trainer. This layer knows nothing of Optuna."""

from __future__ import annotations

from torch import nn

from ecotune.models._cnn import CNN
from ecotune.models._mlp import MLP
from ecotune.models._width import scaled

__all__ = ["CNN", "MLP", "MODELS", "build_model", "count_parameters", "scaled"]

MODELS = {"mlp": MLP, "cnn": CNN}


def build_model(name: str, input_shape: tuple[int, int, int], n_classes: int,
                width: float = 1.0) -> nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` (C, H, W).

    Example:
        >>> count_parameters(build_model("mlp", (1, 8, 8), 10, width=1.0)) > \\
        ...     count_parameters(build_model("mlp", (1, 8, 8), 10, width=0.5))
        True
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name](input_shape, n_classes, width=width)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
