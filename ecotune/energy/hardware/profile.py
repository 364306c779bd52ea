"""Per-layer energy profile: each layer's and each layer type's share of the estimate.

Yarally et al. (CAIN 2023, arXiv 2303.13972) found convolutional layers dominate
training energy and linear layers add little; this table shows where a model's estimated
inference energy goes under either hardware model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ecotune.energy.hardware.asic import asic_layer_costs
from ecotune.energy.hardware.eyeriss import eyeriss_layer_costs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["energy_profile", "HARDWARE_MODELS"]

#: Hardware model -> the energy column of its profile (the unit is in the name).
HARDWARE_MODELS = {"asic": "energy_pj", "eyeriss": "energy_rel"}


def energy_profile(model: nn.Module, batch: torch.Tensor, hardware: str = "asic",
                   by: str = "layer") -> pd.DataFrame:
    """Estimated inference energy per layer (``by="layer"``) or per layer type (``"type"``).

    Columns: ``layer`` (by layer) or ``n_layers`` (by type), ``type``, the energy
    (``energy_pj`` for the ASIC model, ``energy_rel`` for Eyeriss's relative units) and
    ``share`` (of the model's total, 0-1). Rows by type are sorted by energy, largest first.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
        >>> table = energy_profile(net, torch.randn(8, 1, 4, 4), hardware="eyeriss", by="type")
        >>> list(table.columns), round(float(table["share"].sum()), 6)
        (['type', 'n_layers', 'energy_rel', 'share'], 1.0)
    """
    import pandas as pd

    if hardware not in HARDWARE_MODELS:
        raise ValueError(f"unknown hardware model {hardware!r}; expected one of "
                         f"{list(HARDWARE_MODELS)}")
    if by not in ("layer", "type"):
        raise ValueError(f"by must be 'layer' or 'type' (got {by!r})")
    column = HARDWARE_MODELS[hardware]
    if hardware == "asic":
        rows = [(c.name, c.type_name, c.energy_pj) for c in asic_layer_costs(model, batch)]
    else:
        rows = [(c.name, c.type_name, c.total) for c in eyeriss_layer_costs(model, batch)]
    table = pd.DataFrame(rows, columns=["layer", "type", column])
    total = table[column].sum()
    if by == "type":
        table = (table.groupby("type", sort=False)
                 .agg(n_layers=("layer", "size"), **{column: (column, "sum")})
                 .reset_index().sort_values(column, ascending=False, ignore_index=True))
    table["share"] = table[column] / total if total > 0 else float("nan")
    return table
