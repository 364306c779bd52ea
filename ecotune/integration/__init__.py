"""Integrations with training frameworks, each imported on first use (each needs its
framework, not the others').

- :class:`EnergyCallback`: a PyTorch Lightning callback (``pip install ecotune[lightning]``)
  that measures a ``Trainer.fit`` in a trial's measurement window, reports each validation
  epoch, and stops the Trainer when the study's rules say so.
- :class:`HFEnergyCallback`: the same for a Hugging Face ``transformers.Trainer``
  (``pip install ecotune[transformers]``), in a plain Optuna objective or inside
  ``trainer.hyperparameter_search(backend="optuna")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "EnergyCallback": "ecotune.integration._lightning",
    "HFEnergyCallback": "ecotune.integration._transformers",
}

__all__ = ["EnergyCallback", "HFEnergyCallback"]

if TYPE_CHECKING:
    from ecotune.integration._lightning import EnergyCallback
    from ecotune.integration._transformers import HFEnergyCallback

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
