"""Reports of a study: the Pareto front as data, as plots, and as files.

Reads only an ``optuna.Study``. Data functions (:mod:`.front`) are separate from drawing
(:mod:`.plots`) and from writing files (:mod:`.export`).
"""

from __future__ import annotations

from ecotune.report.export import png_export_available, safe_name, write_report
from ecotune.report.front import non_dominated, pareto_front, trials_frame
from ecotune.report.plots import ParetoPlotData, pareto_figure, pareto_plot_data

__all__ = [
    "ParetoPlotData",
    "non_dominated",
    "pareto_figure",
    "pareto_front",
    "pareto_plot_data",
    "png_export_available",
    "safe_name",
    "trials_frame",
    "write_report",
]
