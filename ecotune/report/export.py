"""Write a study's report to a directory: one self-contained HTML file per plot (works
offline), a PNG of each where a browser for static export is present, front.csv,
front.json and hypervolume.csv; and save the plots into the study for optuna-dashboard.

Plots: ``pareto`` (the front, optionally coloured by a parameter), ``hypervolume``
(hypervolume against cumulative search energy), ``learning_curves`` (validation accuracy
per epoch, early-stopped trials marked) and ``parameters`` (each objective against each
parameter).
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go

from ecotune.report.front import pareto_front, sharing_trials_frames
from ecotune.report.hypervolume import hypervolume_history
from ecotune.report.plots import (
    energy_label,
    hypervolume_figure,
    learning_curves_figure,
    parameter_effects_figure,
    pareto_figure,
    pareto_plot_data,
)
from ecotune.report.predictions import prediction_errors
from ecotune.report.profile import layer_profile, layer_type_profile
from ecotune.report.trials import learning_curves, parameter_effects

__all__ = ["write_report", "png_export_available", "safe_name", "report_figures",
           "save_to_dashboard", "write_figure", "DASHBOARD_PREFIX"]

#: optuna-dashboard graph-object ids of ecotune's plots start with this.
DASHBOARD_PREFIX = "ecotune-"

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def safe_name(name: str) -> str:
    """``name`` made safe as one path component (no separators, no ``..``)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "study"


@functools.cache
def png_export_available() -> bool:
    """Whether kaleido can find a Chrome/Chromium for PNG export. Cached; never raises."""
    try:
        import kaleido  # noqa: F401
    except Exception:
        return False
    return any(shutil.which(b) for b in _BROWSERS)


@functools.cache
def _start_browser() -> None:
    # One browser for the whole process: each export would otherwise launch its own (~1.7 s).
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_figures(study: optuna.Study, color_by: str | None = None,
                   history: pd.DataFrame | None = None,
                   reference: Sequence[float] | None = None) -> dict[str, go.Figure]:
    """ecotune's plots of ``study`` by name; a plot with nothing to show is left out
    (a single-objective study has no Pareto plot, a study without learning curves no
    learning-curve plot).

    Args:
        history: the study's :func:`~ecotune.report.hypervolume.hypervolume_history`,
            when the caller has it already (:func:`write_report` computes it once for
            the figure and the CSV); default: computed here against ``reference``.
        reference: the hypervolume reference point (default: ecotune's, see
            :func:`~ecotune.report.hypervolume.reference_point`).
    """
    name = study.study_name
    figures: dict[str, go.Figure] = {}
    if len(study.directions) >= 2:
        figures["pareto"] = pareto_figure(pareto_plot_data(study), color_by=color_by)
    if history is None:
        history = hypervolume_history(study, reference)
    if len(history):
        figures["hypervolume"] = hypervolume_figure(
            {name: history}, f"{name}: hypervolume against search energy")
    curves = learning_curves(study)
    if len(curves):
        figures["learning_curves"] = learning_curves_figure(
            curves, f"{name}: learning curves")
    effects = parameter_effects(study)
    if effects.params and len(effects.frame):
        figures["parameters"] = parameter_effects_figure(
            effects, f"{name}: objectives against parameters")
    return figures


def write_figure(figure: go.Figure, out: Path, stem: str, png: bool) -> dict[str, Path]:
    """Write ``stem.html`` (self-contained) and, if ``png``, ``stem.png`` into ``out``."""
    paths = {"html": out / f"{stem}.html"}
    # include_plotlyjs=True embeds plotly.js: the page works with no internet.
    figure.write_html(paths["html"], include_plotlyjs=True)
    if png:
        _start_browser()
        paths["png"] = out / f"{stem}.png"
        width = figure.layout.width or 900
        height = figure.layout.height or 600
        with warnings.catch_warnings():
            # plotly passes browser options that a running kaleido server ignores.
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            figure.write_image(paths["png"], width=width, height=height, scale=1)
    return paths


def save_to_dashboard(study: optuna.Study, figures: dict[str, go.Figure]) -> list[str]:
    """Store ``figures`` in the study, where optuna-dashboard shows them beside its own
    plots (ids ``ecotune-<name>``; saving again replaces them). Returns the ids."""
    from optuna_dashboard import save_plotly_graph_object

    return [save_plotly_graph_object(study, figure,
                                     graph_object_id=DASHBOARD_PREFIX + name.replace("_", "-"))
            for name, figure in figures.items()]


@sharing_trials_frames  # one trials_frame for the front, the plots and the profiles
def write_report(study: optuna.Study, out_dir: str | Path, png: bool | None = None,
                 color_by: str | None = None, dashboard: bool = True,
                 reference: Sequence[float] | None = None) -> dict[str, Path]:
    """Write the report of ``study`` into ``out_dir`` (created if needed).

    Args:
        png: write a PNG of each plot too; default: where a browser is present.
        color_by: a parameter to colour the Pareto plot by.
        dashboard: also save the plots into the study for optuna-dashboard (the one
            thing here that writes to storage).
        reference: the hypervolume reference point, one value per objective (default:
            ecotune's, see :func:`~ecotune.report.hypervolume.reference_point`).

    Returns:
        The written files by kind: ``csv``, ``json``, ``hypervolume_csv``,
        ``profile_csv`` and ``profile_types_csv`` (the front's per-layer energy shares,
        where the trials stored them), and per plot
        ``<plot>_html`` and maybe ``<plot>_png``; ``html`` and ``png`` name the Pareto plot.
    """
    # Computed once, before anything is written (a bad reference fails here), and shared
    # by hypervolume.csv and the hypervolume figure.
    history = hypervolume_history(study, reference)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    front = pareto_front(study)
    paths = {"csv": out / "front.csv", "json": out / "front.json"}
    front.to_csv(paths["csv"], index=False)
    names = study.metric_names or []
    document = {
        "study": study.study_name,
        "objectives": {n: d.name.lower() for n, d in zip(names, study.directions)},
        "energy": energy_label(front),
        "front": [{k: _json_safe(v) for k, v in row.items()}
                  for row in front.to_dict(orient="records")],
    }
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n",
                             encoding="utf-8")
    tables = {  # kind -> (file, table); a table with no rows is not written
        "profile_csv": ("energy_profile.csv", layer_profile(study)),
        "profile_types_csv": ("energy_profile_by_type.csv", layer_type_profile(study)),
        "predictions_csv": ("early_stopping_predictions.csv", prediction_errors(study)),
        "hypervolume_csv": ("hypervolume.csv", history),
    }
    for kind, (file_name, table) in tables.items():
        if len(table):
            paths[kind] = out / file_name
            table.to_csv(paths[kind], index=False)
    figures = report_figures(study, color_by=color_by, history=history)
    with_png = png if png is not None else png_export_available()
    for name, figure in figures.items():
        for kind, path in write_figure(figure, out, name, with_png).items():
            paths[f"{name}_{kind}"] = path
    if "pareto" in figures:
        paths["html"] = paths["pareto_html"]
        if "pareto_png" in paths:
            paths["png"] = paths["pareto_png"]
    if dashboard and figures:
        save_to_dashboard(study, figures)
    return paths
