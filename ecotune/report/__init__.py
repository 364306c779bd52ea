"""Reports of a study: the Pareto front and hypervolume as data, as plots, and as files.

Reads only an ``optuna.Study``. Data functions (:mod:`.front`, :mod:`.history`,
:mod:`.trials`, :mod:`.compare`) are separate from drawing (:mod:`.plots`) and from
writing files (:mod:`.export`); the hypervolume itself is :func:`ecotune.pareto.hypervolume`.
"""

from __future__ import annotations

from ecotune.report._png import png_size, write_pngs
from ecotune.report.checks import (
    NothingToReport,
    ReportError,
    check_reportable,
    energy_objective,
    plots_not_drawn,
)
from ecotune.report.export import (
    png_export_available,
    report_figures,
    safe_name,
    save_to_dashboard,
    write_report,
)
from ecotune.report.front import non_dominated, pareto_front, trials_frame
from ecotune.report.history import hypervolume_history, reference_point
from ecotune.report.plots import (
    ParetoPlotData,
    hypervolume_figure,
    learning_curves_figure,
    parameter_effects_figure,
    pareto_figure,
    pareto_plot_data,
)
from ecotune.report.predictions import prediction_errors
from ecotune.report.profile import layer_profile, layer_type_profile
from ecotune.report.trials import ParameterEffects, learning_curves, parameter_effects

__all__ = [
    "NothingToReport",
    "ReportError",
    "check_reportable",
    "energy_objective",
    "plots_not_drawn",
    "prediction_errors",
    "layer_profile",
    "layer_type_profile",
    "ParameterEffects",
    "ParetoPlotData",
    "hypervolume_figure",
    "hypervolume_history",
    "learning_curves",
    "learning_curves_figure",
    "non_dominated",
    "parameter_effects",
    "parameter_effects_figure",
    "pareto_figure",
    "pareto_front",
    "pareto_plot_data",
    "png_export_available",
    "png_size",
    "write_pngs",
    "reference_point",
    "report_figures",
    "safe_name",
    "save_to_dashboard",
    "trials_frame",
    "write_report",
]
