"""Recorded (tabular) benchmarks: record a study's grid once, replay searches on it.

``record_table`` runs every configuration of a study's grid with the built-in trainer and
writes one row per trial and epoch; ``replay`` runs real Optuna studies, with real
samplers, whose objective looks each trial up in the table instead of training, so that
samplers, early stopping and successive halving can be compared over many seeds for the
price of one recording. ``replay_scheduler`` walks the same curves for an outside
ask/tell scheduler (a peer such as syne-tune's MOASHA), with the same energy accounting.
"""

from __future__ import annotations

from ecotune.tabular._figure import log_hv_difference_figure, replay_figure
from ecotune.tabular._record import RecordSession, grid_configs, machine_description, record_table
from ecotune.tabular._replay import (
    Method,
    ReplayRun,
    TableObjective,
    check_fits,
    methods_for,
    replay,
)
from ecotune.tabular._scheduled import (
    CurveScheduler,
    ScheduledTrial,
    Scheduler,
    replay_scheduler,
    stopped_energy_j,
)
from ecotune.tabular._summary import (
    LEVELS,
    MeanCI,
    mean_ci,
    mean_curves,
    ratio_at,
    summarize,
)
from ecotune.tabular._table import ConfigRecord, RecordedTable, TableError, read_table

__all__ = [
    "LEVELS",
    "MeanCI",
    "Method",
    "ReplayRun",
    "TableObjective",
    "check_fits",
    "log_hv_difference_figure",
    "mean_ci",
    "mean_curves",
    "methods_for",
    "ratio_at",
    "replay",
    "replay_figure",
    "replay_scheduler",
    "CurveScheduler",
    "Scheduler",
    "ScheduledTrial",
    "stopped_energy_j",
    "summarize",
    "ConfigRecord",
    "RecordSession",
    "RecordedTable",
    "TableError",
    "grid_configs",
    "machine_description",
    "read_table",
    "record_table",
]
