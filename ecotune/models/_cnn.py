"""A small convolutional network whose channels and hidden units scale with `width`."""

from __future__ import annotations

from torch import nn

from ecotune.models._width import scaled

__all__ = ["CNN"]


class CNN(nn.Sequential):
    """[Conv3x3 -> BatchNorm -> ReLU -> MaxPool2] per conv stage -> Linear -> ReLU -> Linear.

    Pooling is skipped once the feature map is smaller than 2x2, so any input size works
    (8x8 digits, 28x28 Fashion-MNIST, 32x32 CIFAR).

    Example:
        >>> net = CNN((1, 8, 8), 10, width=2.0)
        >>> net[0].out_channels, net[4].out_channels
        (32, 64)
    """

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int, width: float = 1.0,
                 channels: tuple[int, ...] = (16, 32), hidden: int = 64) -> None:
        c_in, h, w = input_shape
        layers: list[nn.Module] = []
        for base in channels:
            c_out = scaled(base, width)
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c_out
        n_hidden = scaled(hidden, width)
        layers += [nn.Flatten(), nn.Linear(c_in * h * w, n_hidden), nn.ReLU(),
                   nn.Linear(n_hidden, n_classes)]
        super().__init__(*layers)
