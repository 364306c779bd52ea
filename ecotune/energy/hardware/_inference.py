"""A trained model's estimated inference energy, as a trial records it.

Both hardware models run once on a sample batch (callers pass validation inputs, never
the test split): the zero-skipping ASIC of EAT (picojoules per inference and the energy
ratio against dense) and the Eyeriss-style array (relative units, and its ratio against
the fully dense model), with each layer's share of the ASIC estimate (the per-layer
profile). Tensors on a GPU are fine: the traces copy what they count to the CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecotune.energy.hardware._trace import trace_layers
from ecotune.energy.hardware.asic import asic_costs_from_traces
from ecotune.energy.hardware.eyeriss import dense_energy_from_traces, eyeriss_costs_from_traces

__all__ = ["inference_estimates", "INFERENCE_SAMPLE"]

#: Validation inputs the built-in trainer's estimates run on.
INFERENCE_SAMPLE = 128


def inference_estimates(model: nn.Module, sample_inputs: torch.Tensor) -> dict[str, Any]:
    """Estimates for ``model`` on ``sample_inputs`` (JSON-safe, for a user attribute).

    Keys: ``asic_pj`` (energy of one inference, pJ, with the weights read once per batch
    of ``sample_size`` inferences, as the EAT authors cost a batch), ``asic_energy_ratio``
    (against the same model without zero-skipping), ``eyeriss_rel`` (relative units),
    ``eyeriss_energy_ratio`` (against every weight and input non-zero), ``sample_size``,
    and ``profile``: for each layer, its type and share of the ASIC estimate.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> e = inference_estimates(net, torch.ones(8, 1, 2, 2))
        >>> e["sample_size"], [p["type"] for p in e["profile"]], 0 < e["asic_energy_ratio"] <= 1
        (8, ['Linear', 'Linear'], True)
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            traces = trace_layers(model, sample_inputs)  # one run serves both models
            asic = asic_costs_from_traces(traces, weight_reuse=len(sample_inputs))
            eyeriss_rel = sum(c.total for c in eyeriss_costs_from_traces(traces))
            dense_rel = dense_energy_from_traces(traces)
    finally:
        model.train(was_training)
    asic_pj = sum(c.energy_pj for c in asic)
    asic_dense_pj = sum(c.dense_energy_pj for c in asic)
    return {
        "asic_pj": asic_pj,
        "asic_energy_ratio": asic_pj / asic_dense_pj,
        "eyeriss_rel": eyeriss_rel,
        "eyeriss_energy_ratio": eyeriss_rel / dense_rel,
        "sample_size": len(sample_inputs),
        "profile": [{"layer": c.name, "type": c.type_name,
                     "share": c.energy_pj / asic_pj if asic_pj else None} for c in asic],
    }
