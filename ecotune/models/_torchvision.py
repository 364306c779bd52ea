"""torchvision's ResNet-18 and MobileNetV2 with the `width` knob and any input size.

Widths are scaled and rounded to multiples of 8 (hardware-friendly channel counts, as
MobileNetV2's own ``width_mult`` does). Inputs of 64x64 pixels or less (digits,
Fashion-MNIST, CIFAR, GTSRB) get the usual small-image stem: a stride-1 3x3 first
convolution and no max-pool, so that 32x32 images are not reduced to 1x1 by the stem.
Weights are always freshly initialised: nothing is loaded from a hub.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.resnet import BasicBlock, ResNet

from ecotune.models._width import scaled

__all__ = ["ResNet18", "mobilenet_v2_scaled", "SMALL_INPUT_PX"]

#: Inputs at most this many pixels high and wide use the small-image stem.
SMALL_INPUT_PX = 64


class ResNet18(ResNet):
    """ResNet-18 (torchvision's blocks and forward) with channels 64-128-256-512 x width.

    Example:
        >>> net = ResNet18((3, 32, 32), 10, width=0.5)
        >>> [layer[0].conv1.out_channels for layer in (net.layer1, net.layer4)]
        [32, 256]
    """

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 width: float = 1.0) -> None:
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes the widths: set up here
        c_in, h, w = input_shape
        planes = [scaled(p, width, multiple_of=8) for p in (64, 128, 256, 512)]
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = planes[0], 1, 1, 64
        small = max(h, w) <= SMALL_INPUT_PX
        self.conv1 = nn.Conv2d(c_in, planes[0], kernel_size=3 if small else 7,
                               stride=1 if small else 2, padding=1 if small else 3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, planes[0], 2)
        self.layer2 = self._make_layer(BasicBlock, planes[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, planes[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, planes[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3], n_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def mobilenet_v2_scaled(input_shape: tuple[int, int, int], n_classes: int,
                        width: float = 1.0) -> nn.Module:
    """torchvision's MobileNetV2 with ``width_mult = width`` and a first convolution for
    ``input_shape``'s channels (stride 1 for small images).

    Example:
        >>> net = mobilenet_v2_scaled((1, 28, 28), 10, width=0.5)
        >>> net.features[0][0].in_channels, net.features[0][0].out_channels
        (1, 16)
    """
    c_in, h, w = input_shape
    net = mobilenet_v2(weights=None, num_classes=n_classes, width_mult=width, round_nearest=8)
    first = net.features[0][0]
    small = max(h, w) <= SMALL_INPUT_PX
    net.features[0][0] = nn.Conv2d(c_in, first.out_channels, kernel_size=3,
                                   stride=1 if small else 2, padding=1, bias=False)
    nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")
    return net
