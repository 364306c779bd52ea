"""The zero-skipping ASIC energy model of EAT (Lazzaro et al. 2023; docs/knobs.md).

Per layer, in picojoules (45 nm fp32 figures after Horowitz, ISSCC 2014)::

    E = 1950 * (nnz(params) + nnz(inputs) + nnz(outputs))
        + 3.7 * macs * (nnz(params) / #params) * (nnz(inputs) / #inputs)

summed over the Conv2d and Linear layers; the dense estimate counts every value as
non-zero, and the energy ratio is E / E_dense (at most 1). Parameters are weight and bias.

Figures here are per inference: for one sample, with activation counts averaged over the
sample batch. ``weight_reuse`` is the number of inferences that share one read of the
weights: 1 (the default) charges every inference for all its weights; the authors' code
costs a whole batch at once, reading the weights once per batch, which is
``weight_reuse = batch size`` here, and then activations weigh far more in the total.
(Their code also takes one compute fraction over the whole net and counts pooling and
BatchNorm work; ratios from the two differ slightly.)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ecotune.energy.hardware._trace import LayerTrace, nnz, trace_layers

__all__ = ["MEMORY_PJ", "MAC_PJ", "AsicLayerCost", "asic_energy_pj", "asic_layer_costs",
           "asic_costs_from_traces",
           "inference_energy_pj", "energy_ratio"]

#: One DRAM access, pJ (reads and writes alike).
MEMORY_PJ = 1950.0
#: One multiply-accumulate, pJ.
MAC_PJ = 3.7


def asic_energy_pj(n_params: float, nnz_params: float, n_inputs: float, nnz_inputs: float,
                   nnz_outputs: float, macs: float, weight_reuse: int = 1) -> float:
    """One layer's energy from plain counts, pJ.

    Example:
        >>> asic_energy_pj(n_params=8, nnz_params=4, n_inputs=3, nnz_inputs=2,
        ...                nnz_outputs=2, macs=6)  # 1950 * 8 + 3.7 * 6 * 4/8 * 2/3
        15607.4
    """
    fraction = (nnz_params / n_params) * (nnz_inputs / n_inputs)
    return (MEMORY_PJ * (nnz_params / weight_reuse + nnz_inputs + nnz_outputs)
            + MAC_PJ * macs * fraction)


@dataclasses.dataclass(frozen=True)
class AsicLayerCost:
    """One layer's counts (per sample) and energies, pJ."""

    name: str
    type_name: str
    n_params: int
    nnz_params: int
    n_inputs: int
    nnz_inputs: float
    n_outputs: int
    nnz_outputs: float
    macs: int
    energy_pj: float
    dense_energy_pj: float


def _layer_cost(trace: LayerTrace, weight_reuse: int = 1) -> AsicLayerCost:
    params = trace.params
    n_params = sum(p.numel() for p in params)
    nnz_params = int(sum(int(nnz(p)) for p in params))
    n_inputs = trace.inputs[0].numel()
    n_outputs = trace.outputs[0].numel()
    nnz_inputs = float(trace.nnz_inputs().double().mean())
    nnz_outputs = float(trace.nnz_outputs().double().mean())
    return AsicLayerCost(
        name=trace.name, type_name=trace.type_name, n_params=n_params, nnz_params=nnz_params,
        n_inputs=n_inputs, nnz_inputs=nnz_inputs, n_outputs=n_outputs,
        nnz_outputs=nnz_outputs, macs=trace.macs,
        energy_pj=asic_energy_pj(n_params, nnz_params, n_inputs, nnz_inputs, nnz_outputs,
                                 trace.macs, weight_reuse),
        dense_energy_pj=asic_energy_pj(n_params, n_params, n_inputs, n_inputs, n_outputs,
                                       trace.macs, weight_reuse))


def asic_layer_costs(model: nn.Module, batch: torch.Tensor,
                     weight_reuse: int = 1) -> list[AsicLayerCost]:
    """Per-layer counts and energies of one inference, from the model's run on ``batch``
    (``weight_reuse`` inferences share one read of the weights)."""
    return asic_costs_from_traces(trace_layers(model, batch), weight_reuse)


def asic_costs_from_traces(traces: list[LayerTrace],
                           weight_reuse: int = 1) -> list[AsicLayerCost]:
    """:func:`asic_layer_costs` from traces already taken (one run serves several models)."""
    if weight_reuse < 1:
        raise ValueError(f"weight_reuse must be >= 1 (got {weight_reuse})")
    return [_layer_cost(t, weight_reuse) for t in traces]


def inference_energy_pj(model: nn.Module, batch: torch.Tensor, dense: bool = False,
                        weight_reuse: int = 1) -> float:
    """Energy of one inference on the zero-skipping ASIC (or ``dense``: no skipping), pJ.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
        >>> inference_energy_pj(net, x) <= inference_energy_pj(net, x, dense=True)
        True
    """
    costs = asic_layer_costs(model, batch, weight_reuse)
    return sum(c.dense_energy_pj if dense else c.energy_pj for c in costs)


def energy_ratio(model: nn.Module, batch: torch.Tensor, weight_reuse: int = 1) -> float:
    """E(zero-skipping) / E(dense): EAT's reported metric, at most 1.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> 0 < energy_ratio(net, torch.randn(16, 4)) <= 1
        True
    """
    costs = asic_layer_costs(model, batch, weight_reuse)
    dense = sum(c.dense_energy_pj for c in costs)
    return sum(c.energy_pj for c in costs) / dense
