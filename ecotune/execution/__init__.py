"""Running trials: workers (one process or many, on one machine or many) that share a
trial count and an energy budget, and the failure reasons of trials that did not finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "run_worker": "ecotune.execution._workers",
    "claim_lock": "ecotune.execution._workers",
    "count_trials": "ecotune.execution._workers",
    "start_local_workers": "ecotune.execution._workers",
    "worker_entry": "ecotune.execution._workers",
    "job_index": "ecotune.execution._workers",
    "record_failure": "ecotune.execution._failures",
    "fail_dead_trials": "ecotune.execution._failures",
    "DEAD_WORKER_REASON": "ecotune.execution._failures",
    "INTERRUPTED_REASON": "ecotune.execution._failures",
}

__all__ = [
    "DEAD_WORKER_REASON",
    "INTERRUPTED_REASON",
    "claim_lock",
    "count_trials",
    "fail_dead_trials",
    "job_index",
    "record_failure",
    "run_worker",
    "start_local_workers",
    "worker_entry",
]

if TYPE_CHECKING:
    from ecotune.execution._failures import (
        DEAD_WORKER_REASON,
        INTERRUPTED_REASON,
        fail_dead_trials,
        record_failure,
    )
    from ecotune.execution._workers import (
        claim_lock,
        count_trials,
        job_index,
        run_worker,
        start_local_workers,
        worker_entry,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
