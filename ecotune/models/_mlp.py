"""A multi-layer perceptron whose hidden units scale with `width`."""

from __future__ import annotations

import math

from torch import nn

from ecotune.models._width import scaled

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Flatten -> [Linear -> ReLU] per hidden layer -> Linear to the classes.

    Example:
        >>> MLP((1, 8, 8), 10, width=0.5, hidden=(64, 32))[1].out_features
        32
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, width: float = 1.0,
                 hidden: tuple[int, ...] = (256, 128)) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = math.prod(input_shape)
        for base in hidden:
            n_out = scaled(base, width)
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            n_in = n_out
        layers.append(nn.Linear(n_in, n_classes))
        super().__init__(*layers)
