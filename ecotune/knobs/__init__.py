"""The energy knobs a trial applies. This layer knows nothing of Optuna.

- :mod:`ecotune.knobs.eat`: the EAT sparsity penalty (``eat_lambda``, ``eat_sigma``).
- ``width`` lives with the models (:func:`ecotune.models.scaled`).
"""

from __future__ import annotations

from ecotune.knobs.eat import DEFAULT_SIGMA, EATPenalty, hidden_activation_modules, l0hat

__all__ = ["DEFAULT_SIGMA", "EATPenalty", "hidden_activation_modules", "l0hat"]
