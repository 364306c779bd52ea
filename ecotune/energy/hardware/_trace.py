"""Run a model on a sample batch and collect what the hardware energy models need.

Forward hooks on the model's leaf modules record, for every Conv2d and Linear, the input and
output tensors, the weights and the layer's geometry (output positions, channels, groups,
multiply-accumulates). BatchNorm, ReLU, pooling, Flatten and Dropout pass through uncosted;
any other leaf layer is an error that names it, so an estimate never silently leaves out
work. Work done by functional calls inside ``forward`` (``F.conv2d``...) is not seen.

Counts are per sample (one inference), as means over the batch where they depend on the
input; a value is non-zero when ``|x| > 2^-126`` (the smallest normal float32).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerTrace", "trace_layers", "nnz", "NONZERO_THRESHOLD", "COSTED", "PASSTHROUGH"]

#: |x| above this counts as non-zero: 2^-126, the smallest normal float32.
NONZERO_THRESHOLD = 2.0 ** -126

COSTED = (nn.Conv2d, nn.Linear)
PASSTHROUGH = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.ReLU, nn.ReLU6,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Flatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity,
)


def nnz(tensor: torch.Tensor, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """Number of non-zeros (``|x| > 2^-126``), over ``dims`` or the whole tensor.

    Example:
        >>> int(nnz(torch.tensor([0.0, 1e-40, -2.0, 3.0])))
        2
    """
    mask = tensor.abs() > NONZERO_THRESHOLD
    return mask.sum() if dims is None else mask.sum(dim=dims)


@dataclasses.dataclass(frozen=True)
class LayerTrace:
    """One costed layer's run on the batch.

    ``positions`` is P, the output positions per sample (H_out x W_out for a conv, 1 for a
    Linear); ``macs`` are the multiply-accumulates of one sample.
    """

    name: str
    module: nn.Module
    inputs: torch.Tensor
    outputs: torch.Tensor

    @property
    def kind(self) -> str:
        """``"conv"`` or ``"linear"``."""
        return "conv" if isinstance(self.module, nn.Conv2d) else "linear"

    @property
    def type_name(self) -> str:
        return type(self.module).__name__

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight.detach()

    @property
    def params(self) -> list[torch.Tensor]:
        """Weight and bias (where present)."""
        return [p.detach() for p in self.module.parameters(recurse=False)]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def groups(self) -> int:
        return self.module.groups if self.kind == "conv" else 1

    @property
    def out_channels(self) -> int:
        """d: output channels (conv) or output features (linear)."""
        return self.outputs.shape[1]

    @property
    def positions(self) -> int:
        return self.outputs[0, 0].numel() if self.kind == "conv" else 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one sample: one per weight per output position."""
        return self.positions * self.weight.numel()

    def nnz_inputs(self) -> torch.Tensor:
        """Non-zero inputs of each sample (shape: batch)."""
        return nnz(self.inputs, tuple(range(1, self.inputs.dim())))

    def nnz_outputs(self) -> torch.Tensor:
        return nnz(self.outputs, tuple(range(1, self.outputs.dim())))

    def _masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        return ((self.inputs.abs() > NONZERO_THRESHOLD).to(torch.float64),
                (self.weight.abs() > NONZERO_THRESHOLD).to(torch.float64))

    def nonzero_macs(self) -> torch.Tensor:
        """MACs of each sample whose weight AND input are both non-zero (shape: batch)."""
        x_mask, w_mask = self._masks()
        if self.kind == "linear":
            return (x_mask @ w_mask.T).sum(dim=1)
        m = self.module
        both = F.conv2d(x_mask, w_mask, None, m.stride, m.padding, m.dilation, m.groups)
        return both.sum(dim=(1, 2, 3))

    def nnz_unfolded_inputs(self) -> torch.Tensor:
        """Non-zeros of each sample's unfolded (im2col) input: every input value counted
        once per output position that reads it (conv only; a Linear's input itself)."""
        x_mask, _ = self._masks()
        if self.kind == "linear":
            return x_mask.sum(dim=1)
        m = self.module
        cols = F.unfold(x_mask, m.kernel_size, m.dilation, m.padding, m.stride)
        return cols.sum(dim=(1, 2))


def _check(model: nn.Module) -> list[tuple[str, nn.Module]]:
    costed = []
    for name, module in model.named_modules():
        is_leaf = not any(True for _ in module.children())
        if is_leaf and isinstance(module, COSTED):
            if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
                raise ValueError(f"layer {name!r}: Conv2d padding_mode "
                                 f"{module.padding_mode!r} is not supported; expected 'zeros'")
            costed.append((name, module))
        elif is_leaf and not isinstance(module, PASSTHROUGH):
            raise ValueError(
                f"layer {name or '<model>'!r} of type {type(module).__name__} cannot be costed: "
                "the hardware energy models cost Conv2d and Linear and pass BatchNorm, ReLU, "
                "pooling, Flatten and Dropout through")
        elif not is_leaf and any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"layer {name or '<model>'!r} of type {type(module).__name__} has "
                             "its own parameters beside submodules: cannot be costed")
    return costed


def trace_layers(model: nn.Module, batch: torch.Tensor) -> list[LayerTrace]:
    """Run ``model`` in eval mode on ``batch`` and return each costed layer's trace.

    The model runs where it is (a GPU included): ``batch`` is moved to the device of the
    model's parameters first, so every estimator built on the traces (``energy_ratio``,
    ``eyeriss_energy``, ``eyeriss_layer_costs``, ...) accepts inputs from anywhere.

    Raises:
        ValueError: a layer of a type the models cannot cost, naming it.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> traces = trace_layers(net, torch.ones(5, 2, 2))
        >>> [(t.name, t.kind, t.macs) for t in traces]
        [('1', 'linear', 12), ('3', 'linear', 6)]
    """
    costed = _check(model)
    parameter = next(model.parameters(), None)
    if parameter is not None and batch.device != parameter.device:
        batch = batch.to(parameter.device)
    traces: list[LayerTrace] = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            if isinstance(module, nn.Linear) and x.dim() != 2:
                raise ValueError(f"layer {name!r}: Linear input of shape {tuple(x.shape)}; "
                                 "the models cost (batch, features) inputs only")
            # Clone: a later in-place op (ReLU(inplace=True)) would change what we saw.
            traces.append(LayerTrace(name, module, x.detach().clone(),
                                     output.detach().clone()))
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in costed]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return traces
