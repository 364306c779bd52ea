"""The Eyeriss-style systolic-array energy model of Yang, Zhu and Liu (ICLR 2019).

Relative units (Yang et al. 2019; docs/knobs.md): a MAC costs 3 (register reads/writes included), a
DRAM access 200, a cache access 6, a register-file access 1; the array is 12 x 14 (m, n);
the input cache holds 51,200 entries and the weight cache 4,096. Per layer,
E = E_compute + E_weights + E_inputs:

- conv: compute ``3 * MACs with non-zero weight and input``; weights
  ``ceil(P/m)*nnz(W)*6 + P*nnz(W)*1 + (ceil(P/m)*max(0, nnz(W)-4096) + min(4096, nnz(W)))*200``;
  inputs ``nnz(unfold(X))*ceil((d/g)/n)*6 + nnz(unfold(X))*ceil(d/g)*1 + nnz(X)*200 + P*d*200``.
- fully connected: compute ``3 * nnz(W)``; weights ``(200 + 6 + 1) * nnz(W)``; inputs
  ``ceil(d/n)*6*nnz(X) + d*nnz(X) + 200*(ceil(d/n)*max(0, nnz(X)-51200) + min(nnz(X), 51200))
  + 200*d``.

P is the number of output positions, d the output channels, g the groups. The authors also
add DRAM re-reads for overlapping input rows; that term is left out here. Biases are not
costed. Figures are per inference: each sample is costed and the costs averaged over the
batch (the input terms are not linear in nnz(X)).

:func:`conv_energy` and :func:`linear_energy` take plain counts, so a projection step can
price each weight from them (the marginal cost of one more non-zero weight).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ecotune.energy.hardware._trace import LayerTrace, nnz, trace_layers

__all__ = ["MAC", "DRAM", "CACHE", "RF", "ARRAY_ROWS", "ARRAY_COLS", "INPUT_CACHE",
           "WEIGHT_CACHE", "EyerissParts", "EyerissLayerCost", "conv_energy",
           "linear_energy", "eyeriss_layer_costs", "eyeriss_costs_from_traces", "eyeriss_energy",
           "dense_energy", "dense_energy_from_traces"]

MAC = 3.0
DRAM = 200.0
CACHE = 6.0
RF = 1.0
ARRAY_ROWS = 12  # m
ARRAY_COLS = 14  # n
INPUT_CACHE = 51_200
WEIGHT_CACHE = 4_096


class EyerissParts(NamedTuple):
    """A layer's energy in relative units, by part."""

    compute: float
    weights: float
    inputs: float

    @property
    def total(self) -> float:
        return self.compute + self.weights + self.inputs


def conv_energy(nnz_weights: float, nnz_unfolded_inputs: float, nnz_inputs: float,
                positions: int, out_channels: int, groups: int,
                nonzero_macs: float) -> EyerissParts:
    """A Conv2d layer's energy parts for one sample, from plain counts.

    Example:
        >>> conv_energy(nnz_weights=5, nnz_unfolded_inputs=20, nnz_inputs=10, positions=4,
        ...             out_channels=1, groups=1, nonzero_macs=12)
        EyerissParts(compute=36.0, weights=1050.0, inputs=2940.0)
    """
    m, n = ARRAY_ROWS, ARRAY_COLS
    p, w = positions, nnz_weights
    tiles = math.ceil(p / m)
    weights = (tiles * w * CACHE + p * w * RF
               + (tiles * max(0.0, w - WEIGHT_CACHE) + min(WEIGHT_CACHE, w)) * DRAM)
    per_group = out_channels // groups
    inputs = (nnz_unfolded_inputs * math.ceil(per_group / n) * CACHE
              + nnz_unfolded_inputs * per_group * RF
              + nnz_inputs * DRAM + p * out_channels * DRAM)
    return EyerissParts(MAC * nonzero_macs, weights, inputs)


def linear_energy(nnz_weights: float, nnz_inputs: float, out_features: int) -> EyerissParts:
    """A Linear layer's energy parts for one sample, from plain counts.

    Example:
        >>> linear_energy(nnz_weights=3, nnz_inputs=2, out_features=2)
        EyerissParts(compute=9.0, weights=621.0, inputs=816.0)
    """
    d, x = out_features, nnz_inputs
    tiles = math.ceil(d / ARRAY_COLS)
    inputs = (tiles * CACHE * x + d * RF * x
              + DRAM * (tiles * max(0.0, x - INPUT_CACHE) + min(x, INPUT_CACHE)) + DRAM * d)
    return EyerissParts(MAC * nnz_weights, (DRAM + CACHE + RF) * nnz_weights, inputs)


@dataclasses.dataclass(frozen=True)
class EyerissLayerCost:
    """One layer's counts (per-sample means where they depend on the input) and energy."""

    name: str
    type_name: str
    n_weights: int
    nnz_weights: int
    nnz_inputs: float
    nnz_unfolded_inputs: float
    positions: int
    out_channels: int
    groups: int
    macs: int
    nonzero_macs: float
    compute: float
    weights: float
    inputs: float

    @property
    def total(self) -> float:
        return self.compute + self.weights + self.inputs


def _layer_cost(trace: LayerTrace) -> EyerissLayerCost:
    nnz_w = int(nnz(trace.weight))
    nnz_x = trace.nnz_inputs().tolist()
    unfolded = trace.nnz_unfolded_inputs().tolist()
    nz_macs = trace.nonzero_macs().tolist()
    if trace.kind == "conv":
        parts = [conv_energy(nnz_w, u, x, trace.positions, trace.out_channels, trace.groups, c)
                 for u, x, c in zip(unfolded, nnz_x, nz_macs)]
    else:
        parts = [linear_energy(nnz_w, x, trace.out_channels) for x in nnz_x]
    count = len(parts)

    def mean(values: list[float]) -> float:
        return sum(values) / count

    return EyerissLayerCost(
        name=trace.name, type_name=trace.type_name, n_weights=trace.weight.numel(),
        nnz_weights=nnz_w, nnz_inputs=mean(nnz_x), nnz_unfolded_inputs=mean(unfolded),
        positions=trace.positions, out_channels=trace.out_channels, groups=trace.groups,
        macs=trace.macs, nonzero_macs=mean(nz_macs),
        compute=mean([p.compute for p in parts]), weights=mean([p.weights for p in parts]),
        inputs=mean([p.inputs for p in parts]))


def eyeriss_layer_costs(model: nn.Module, batch: torch.Tensor) -> list[EyerissLayerCost]:
    """Per-layer counts and energy parts of one inference, from the run on ``batch``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
        >>> costs = eyeriss_layer_costs(net, torch.randn(4, 1, 4, 4))
        >>> [(c.name, c.type_name, c.positions, c.out_channels) for c in costs]
        [('0', 'Conv2d', 4, 2), ('3', 'Linear', 1, 3)]
    """
    return eyeriss_costs_from_traces(trace_layers(model, batch))


def eyeriss_costs_from_traces(traces: list[LayerTrace]) -> list[EyerissLayerCost]:
    """:func:`eyeriss_layer_costs` from traces already taken."""
    return [_layer_cost(t) for t in traces]


def dense_energy_from_traces(traces: list[LayerTrace]) -> float:
    """Energy of one inference with every weight and input value non-zero (zero padding
    stays zero), relative units: the reference of energy budgets."""
    total = 0.0
    for t in traces:
        n_weights, n_inputs = t.weight.numel(), t.inputs[0].numel()
        if t.kind == "conv":
            m = t.module
            unfolded = F.unfold(torch.ones_like(t.inputs[:1]), m.kernel_size, m.dilation,
                                m.padding, m.stride).sum().item()
            total += conv_energy(n_weights, unfolded, n_inputs, t.positions, t.out_channels,
                                 t.groups, t.macs).total
        else:
            total += linear_energy(n_weights, n_inputs, t.out_channels).total
    return total


def dense_energy(model: nn.Module, batch: torch.Tensor) -> float:
    """:func:`dense_energy_from_traces` of ``model`` run on ``batch``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> dense_energy(net, torch.zeros(3, 1, 2, 2)) == linear_energy(8, 4, 2).total
        True
    """
    return dense_energy_from_traces(trace_layers(model, batch))


def eyeriss_energy(model: nn.Module, batch: torch.Tensor) -> float:
    """Energy of one inference on the Eyeriss-style array, relative units."""
    return sum(c.total for c in eyeriss_layer_costs(model, batch))
