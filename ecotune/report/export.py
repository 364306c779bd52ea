"""Write a study's report to a directory: ``index.html`` with every plot and the front's
table on one page, one HTML page per plot, a PNG of each where a browser for static export
is present, front.csv, front.json and hypervolume.csv; and save the plots into the study
for optuna-dashboard.

plotly.js is written once into the folder (``plotly.min.js``) and every page loads it from
there: the pages work offline, and the quickstart's report folder is about 5 MB where four
self-contained pages took 19 MB.

Plots: ``pareto`` (the front, optionally coloured by a parameter), ``hypervolume``
(hypervolume against cumulative search energy), ``learning_curves`` (validation accuracy
per epoch, the front's trials named) and ``parameters`` (each objective against each
parameter).
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go

from ecotune.pareto import objective_names
from ecotune.report._png import png_export_available, start_browser, write_pngs
from ecotune.report.checks import check_reportable, energy_objective, plots_not_drawn
from ecotune.report.front import pareto_front, sharing_trials_frames
from ecotune.report.history import hypervolume_history
from ecotune.report.page import PLOTLYJS_FILE, report_page, write_plotlyjs
from ecotune.report.plots import (
    _UNITS,
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


def safe_name(name: str) -> str:
    """``name`` made safe as one path component (no separators, no ``..``)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "study"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def energy_history(study: optuna.Study, energy_name: str | None,
                   reference: Sequence[float] | None = None) -> pd.DataFrame:
    """:func:`~ecotune.report.history.hypervolume_history` against ``reference``.

    Where no trial recorded ``energy_j`` (a plain Optuna study whose energy objective has
    another name), the energy objective's values stand in, in that objective's unit
    (:func:`_energy_unit`).
    """
    history = hypervolume_history(study, reference)
    if _energy_unit(history, energy_name) == "J":
        return history
    index = objective_names(study).index(energy_name)
    energies = {t.number: t.values[index] for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    history["energy_j"] = history["trial"].map(energies).astype(float)
    history["cumulative_energy_j"] = history["energy_j"].fillna(0.0).cumsum()
    history.attrs["energy_unit"] = _UNITS.get(energy_name, energy_name)
    return history


def _energy_unit(history: pd.DataFrame, energy_name: str | None) -> str:
    """Joules, unless the history's energy is the values of another energy objective."""
    if "energy_unit" in history.attrs:
        return history.attrs["energy_unit"]
    if energy_name in (None, "energy_j") or not len(history) or \
            history["energy_j"].notna().any():
        return "J"
    return _UNITS.get(energy_name, energy_name)


def _volume_unit(names: list[str]) -> str:
    # A hypervolume's unit is the product of its objectives' (accuracy is a fraction).
    return " x ".join(_UNITS[n] if _UNITS.get(n, "0-1") != "0-1" else n for n in names)


def report_figures(study: optuna.Study, color_by: str | None = None,
                   history: pd.DataFrame | None = None,
                   reference: Sequence[float] | None = None) -> dict[str, go.Figure]:
    """ecotune's plots of ``study`` by name; a plot with nothing to show is left out
    (a single-objective study has no Pareto plot, a study without learning curves no
    learning-curve plot: :func:`~ecotune.report.checks.plots_not_drawn` says why).

    Args:
        history: the study's :func:`energy_history`, when the caller has it already
            (:func:`write_report` computes it once for the figure and the CSV); default:
            computed here against ``reference``.
        reference: the hypervolume reference point (default: ecotune's, see
            :func:`~ecotune.report.history.reference_point`).
    """
    name = study.study_name
    names = objective_names(study)
    figures: dict[str, go.Figure] = {}
    if len(study.directions) >= 2:
        figures["pareto"] = pareto_figure(pareto_plot_data(study), color_by=color_by)
    try:
        energy_name: str | None = energy_objective(study)
    except ValueError:
        energy_name = None
    if history is None:
        history = energy_history(study, energy_name, reference)
    unit = _energy_unit(history, energy_name)
    if len(history):
        figures["hypervolume"] = hypervolume_figure(
            {name: history}, f"{name}: hypervolume against search energy",
            energy_note=energy_label(pareto_front(study)), volume_unit=_volume_unit(names),
            energy_unit=unit)
    curves = learning_curves(study)
    if len(curves):
        front = pareto_front(study)["trial"].tolist() if len(names) >= 2 else []
        figures["learning_curves"] = learning_curves_figure(
            curves, f"{name}: learning curves (the Pareto front's trials in colour)",
            front_trials=front)
    effects = parameter_effects(study)
    if effects.params and len(effects.frame):
        figures["parameters"] = parameter_effects_figure(
            effects, f"{name}: objectives against parameters")
    return figures


def write_figure(figure: go.Figure, out: Path, stem: str, png: bool,
                 plotlyjs: bool | str = True) -> dict[str, Path]:
    """Write ``stem.html`` and, if ``png``, ``stem.png`` into ``out``.

    ``plotlyjs``: True embeds plotly.js (a self-contained 4.8 MB page); a file name
    (e.g. ``"plotly.min.js"``) loads it from that file beside the page instead.
    """
    paths = {"html": out / f"{stem}.html"}
    figure.write_html(paths["html"], include_plotlyjs=plotlyjs, config={"responsive": True})
    if png:
        paths["png"] = out / f"{stem}.png"
        write_pngs({paths["png"]: figure})
    return paths


def save_to_dashboard(study: optuna.Study, figures: dict[str, go.Figure]) -> list[str]:
    """Store ``figures`` in the study, where optuna-dashboard shows them beside its own
    plots (ids ``ecotune-<name>``; saving again replaces them). Returns the ids."""
    from optuna_dashboard import save_plotly_graph_object

    from ecotune.storage import set_study_system_attrs

    # optuna-dashboard writes each 2 KB chunk of a figure on its own (a transaction each,
    # hundreds per report): collect them, then write them all in one.
    collected = _CollectedSystemAttrs(study._storage)
    target = types.SimpleNamespace(_storage=collected, _study_id=study._study_id)
    ids = [save_plotly_graph_object(target, figure,
                                    graph_object_id=DASHBOARD_PREFIX + name.replace("_", "-"))
           for name, figure in figures.items()]
    set_study_system_attrs(study._storage, study._study_id, collected.written)
    return ids


class _CollectedSystemAttrs:
    """A storage for optuna-dashboard's figure saving: study system attributes written
    are kept in ``written`` (later writes of a key win); reads see the storage as it is,
    which is all its clean-up of a longer earlier figure needs."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        self.written: dict[str, object] = {}

    def set_study_system_attr(self, study_id: int, key: str, value: object) -> None:
        self.written[key] = value

    def get_study_system_attrs(self, study_id: int) -> dict[str, object]:
        return self._storage.get_study_system_attrs(study_id)


@sharing_trials_frames  # one trials_frame for the front, the plots and the profiles
def write_report(study: optuna.Study, out_dir: str | Path, png: bool | None = None,
                 color_by: str | None = None, dashboard: bool = True,
                 reference: Sequence[float] | None = None) -> dict[str, Path]:
    """Write the report of ``study`` into ``out_dir`` (created if needed).

    Args:
        png: write a PNG of each plot too; default: where a browser is present. All the
            PNGs are drawn in one browser session.
        color_by: a parameter to colour the Pareto plot by.
        dashboard: also save the plots into the study for optuna-dashboard (the one
            thing here that writes to storage).
        reference: the hypervolume reference point, one value per objective (default:
            ecotune's, see :func:`~ecotune.report.history.reference_point`).

    Raises:
        NothingToReport: the study has no complete, feasible trial (nothing is written).
        ReportError: the study has no energy objective to minimise, or ``color_by`` is
            not one of its parameters (nothing is written).

    Returns:
        The written files by kind: ``index`` (the page with every plot and the front),
        ``plotlyjs``, ``csv``, ``json``, ``hypervolume_csv``, ``profile_csv`` and
        ``profile_types_csv`` (the front's per-layer energy shares, where the trials
        stored them), and per plot ``<plot>_html`` and maybe ``<plot>_png``; ``html`` and
        ``png`` name the Pareto plot. ``front.json``'s ``not_drawn`` gives the plots left
        out and why.
    """
    energy_name = check_reportable(study, color_by)  # before anything is created
    # Computed once, before anything is written (a bad reference fails here), and shared
    # by hypervolume.csv and the hypervolume figure.
    history = energy_history(study, energy_name, reference)
    figures = report_figures(study, color_by=color_by, history=history)
    not_drawn = plots_not_drawn(figures)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with_png = png if png is not None else png_export_available()
    if with_png:
        start_browser()  # in the background, while the other files are written
    front = pareto_front(study)
    paths, document = _write_front(study, front, energy_name, not_drawn, out)
    paths.update(_write_tables(study, history, out))
    paths.update(_write_plots(figures, out, with_png))
    paths["index"] = _write_index(study, figures, front, document, not_drawn, paths, out)
    if with_png:  # all of them in one batch, to the one browser
        write_pngs({paths[f"{name}_png"]: figure for name, figure in figures.items()})
    if dashboard and figures:
        save_to_dashboard(study, figures)
    return paths


def _write_front(study: optuna.Study, front: pd.DataFrame, energy_name: str | None,
                 not_drawn: dict[str, str], out: Path) -> tuple[dict[str, Path], dict]:
    """front.csv and front.json; their paths, and front.json's content."""
    names = objective_names(study)
    paths = {"csv": out / "front.csv", "json": out / "front.json"}
    front.to_csv(paths["csv"], index=False)
    document = {
        "study": study.study_name,
        "objectives": {n: d.name.lower() for n, d in zip(names, study.directions)},
        "energy_objective": energy_name,
        "energy": energy_label(front),
        "not_drawn": not_drawn,
        "front": [{k: _json_safe(v) for k, v in row.items()}
                  for row in front.to_dict(orient="records")],
    }
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n",
                             encoding="utf-8")
    return paths, document


def _write_tables(study: optuna.Study, history: pd.DataFrame, out: Path) -> dict[str, Path]:
    """The CSV tables that have rows (energy profiles, predictions, hypervolume)."""
    paths: dict[str, Path] = {}
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
    return paths


def _write_plots(figures: dict[str, go.Figure], out: Path, with_png: bool,
                 ) -> dict[str, Path]:
    """plotly.js and a page per plot; the PNGs' paths (drawn later, in one batch)."""
    paths = {"plotlyjs": write_plotlyjs(out)}
    for name, figure in figures.items():
        paths.update({f"{name}_{kind}": path for kind, path in write_figure(
            figure, out, name, png=False, plotlyjs=PLOTLYJS_FILE).items()})
        if with_png:
            paths[f"{name}_png"] = out / f"{name}.png"
    if "pareto" in figures:
        paths["html"] = paths["pareto_html"]
        if "pareto_png" in paths:
            paths["png"] = paths["pareto_png"]
    return paths


def _write_index(study: optuna.Study, figures: dict[str, go.Figure], front: pd.DataFrame,
                 document: dict, not_drawn: dict[str, str], paths: dict[str, Path],
                 out: Path) -> Path:
    """index.html: every plot and the front on one page, listing the other files."""
    n_complete = sum(t.state == optuna.trial.TrialState.COMPLETE
                     for t in study.get_trials(deepcopy=False))
    summary = (f"{len(study.get_trials(deepcopy=False))} trial(s), {n_complete} complete; "
               f"objectives {', '.join(document['objectives'])}; energy: {document['energy']}")
    index = out / "index.html"
    files = sorted({p.name for k, p in paths.items() if k != "index"})
    index.write_text(report_page(study.study_name, figures, front, objective_names(study),
                                 summary, not_drawn, files), encoding="utf-8")
    return index
