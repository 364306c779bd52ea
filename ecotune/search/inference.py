"""The trained model's estimated inference energy, as a trial records it.

Both hardware models of :mod:`ecotune.energy.hardware` run once on a fixed sample of the
validation split (never the test split): the zero-skipping ASIC of EAT (picojoules per
inference and the energy ratio against dense) and the Eyeriss-style array (relative units,
and its ratio against the fully dense model), with each layer type's share of the ASIC
estimate (the per-layer profile).
"""

from __future__ import annotations

from typing import Any

import torch

from ecotune.data import DataSplits
from ecotune.energy.hardware import (
    asic_costs_from_traces,
    dense_energy_from_traces,
    eyeriss_costs_from_traces,
    trace_layers,
)
from ecotune.training import TrainResult

__all__ = ["inference_record", "INFERENCE_SAMPLE", "INFERENCE_ATTR"]

#: Validation inputs the estimates run on.
INFERENCE_SAMPLE = 128
INFERENCE_ATTR = "inference"


def inference_record(result: TrainResult, data: DataSplits) -> dict[str, Any]:
    """Estimates for the trained model of ``result`` (JSON-safe, for a user attribute).

    Keys: ``asic_pj`` (energy of one inference, pJ, with the weights read once per batch of
    ``sample_size`` inferences), ``asic_energy_ratio`` (against the same model without
    zero-skipping), ``eyeriss_rel`` (relative units),
    ``eyeriss_energy_ratio`` (against every weight and input non-zero), ``sample_size``,
    and ``profile``: for each layer, its type and share of the ASIC estimate.
    """
    sample = data.x_val[:INFERENCE_SAMPLE]
    if result.input_mask is not None:
        sample = sample * result.input_mask
    model = result.model
    with torch.no_grad():
        traces = trace_layers(model, sample)  # one run serves both models
        # As the authors' code: the weights are read once for the whole sample batch.
        asic = asic_costs_from_traces(traces, weight_reuse=len(sample))
        eyeriss_rel = sum(c.total for c in eyeriss_costs_from_traces(traces))
        dense_rel = dense_energy_from_traces(traces)
    asic_pj = sum(c.energy_pj for c in asic)
    asic_dense_pj = sum(c.dense_energy_pj for c in asic)
    return {
        "asic_pj": asic_pj,
        "asic_energy_ratio": asic_pj / asic_dense_pj,
        "eyeriss_rel": eyeriss_rel,
        "eyeriss_energy_ratio": eyeriss_rel / dense_rel,
        "sample_size": len(sample),
        "profile": [{"layer": c.name, "type": c.type_name,
                     "share": c.energy_pj / asic_pj if asic_pj else None} for c in asic],
    }
