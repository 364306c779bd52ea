"""Width-scalable networks of the built-in trainer. This layer knows nothing of Optuna.

``mlp`` and ``cnn`` are ecotune's own small models; ``resnet18`` and ``mobilenet_v2`` are
torchvision's architectures with the ``width`` knob (multiples of 8), freshly initialised.
torchvision is imported only when one of those two is built or named: its import costs
about 2 CPU-s, which every worker process training an mlp or cnn would pay otherwise.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ecotune import names
from ecotune._lazy import lazy_exports
from ecotune.models._cnn import CNN
from ecotune.models._mlp import MLP
from ecotune.models._width import scaled
from ecotune.models.complexity import count_macs, count_parameters
from ecotune.names import check_implements

__all__ = ["CNN", "MLP", "MODELS", "ResNet18", "build_model", "count_macs", "count_parameters",
           "mobilenet_v2_scaled", "scaled"]

#: torchvision's two, imported on first use (``ecotune.models.ResNet18`` too).
_EXPORTS = {"ResNet18": "ecotune.models._torchvision",
            "mobilenet_v2_scaled": "ecotune.models._torchvision"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def _on_first_use(name: str) -> Any:
    """A builder that imports torchvision on its first call, then calls ``name``."""

    def build(input_shape: tuple[int, int, int], n_classes: int, width: float = 1.0) -> Any:
        return __getattr__(name)(input_shape, n_classes, width=width)

    build.__doc__ = f":func:`{name}`, torchvision imported on the first call."
    return build


MODELS = {"mlp": MLP, "cnn": CNN, "resnet18": _on_first_use("ResNet18"),
          "mobilenet_v2": _on_first_use("mobilenet_v2_scaled")}
check_implements("model", names.MODELS, MODELS)


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
