"""Comparing samplers live: the runs of ``ecotune compare`` (a study per sampler and
repeat), run one after another."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "comparison_runs": "ecotune.comparison._runs",
    "run_comparison": "ecotune.comparison._runs",
    "run_name": "ecotune.comparison._runs",
}

__all__ = [
    "comparison_runs",
    "run_comparison",
    "run_name",
]

if TYPE_CHECKING:
    from ecotune.comparison._runs import comparison_runs, run_comparison, run_name

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
