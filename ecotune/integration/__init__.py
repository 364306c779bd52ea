"""Integrations with training frameworks.

- :class:`EnergyCallback`: a PyTorch Lightning callback (``pip install ecotune[lightning]``)
  that measures a ``Trainer.fit`` in a trial's measurement window, reports each validation
  epoch, and stops the Trainer when the study's rules say so.
"""

from __future__ import annotations

from ecotune.integration._lightning import EnergyCallback

__all__ = ["EnergyCallback"]
