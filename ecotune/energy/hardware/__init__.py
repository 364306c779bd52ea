"""Hardware energy models of a trained model's inference, from its real non-zeros.

- :mod:`~ecotune.energy.hardware.asic`: the zero-skipping ASIC of EAT (pJ, energy ratio).
- :mod:`~ecotune.energy.hardware.eyeriss`: the Eyeriss-style array of Yang et al. 2019
  (relative units), with per-layer parts and plain-count functions for per-weight costs.
- :func:`energy_profile`: each layer's and layer type's share, as a table.

Both run the model once on a sample batch with forward hooks (``_trace``); Conv2d and
Linear are costed, BatchNorm/ReLU/pooling/Flatten/Dropout pass through, and any other layer
type is an error naming it. This subpackage imports torch; ``ecotune.energy`` does not
import it.
"""

from __future__ import annotations

from ecotune.energy.hardware._inference import INFERENCE_SAMPLE, inference_estimates
from ecotune.energy.hardware._trace import NONZERO_THRESHOLD, LayerTrace, nnz, trace_layers
from ecotune.energy.hardware.asic import (
    AsicLayerCost,
    asic_costs_from_traces,
    asic_energy_pj,
    asic_layer_costs,
    energy_ratio,
    inference_energy_pj,
)
from ecotune.energy.hardware.eyeriss import (
    EyerissLayerCost,
    EyerissParts,
    conv_energy,
    dense_energy,
    dense_energy_from_traces,
    eyeriss_costs_from_traces,
    eyeriss_energy,
    eyeriss_layer_costs,
    linear_energy,
)
from ecotune.energy.hardware.profile import HARDWARE_MODELS, energy_profile

__all__ = [
    "INFERENCE_SAMPLE",
    "inference_estimates",
    "NONZERO_THRESHOLD",
    "LayerTrace",
    "nnz",
    "trace_layers",
    "AsicLayerCost",
    "asic_costs_from_traces",
    "asic_energy_pj",
    "asic_layer_costs",
    "energy_ratio",
    "inference_energy_pj",
    "EyerissLayerCost",
    "EyerissParts",
    "conv_energy",
    "dense_energy",
    "dense_energy_from_traces",
    "eyeriss_costs_from_traces",
    "eyeriss_energy",
    "eyeriss_layer_costs",
    "linear_energy",
    "HARDWARE_MODELS",
    "energy_profile",
]
