"""Drawing: Plotly figures from the plain data of :mod:`ecotune.report.front`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from ecotune.names import ATTR_ENERGY_ATTRIBUTION, ATTRIBUTION_SHARED, ATTRIBUTION_UNSPLIT
from ecotune.pareto import objective_names
from ecotune.report.checks import is_energy_name
from ecotune.report.front import trials_frame
from ecotune.report.noise import add_interval_traces
from ecotune.report.trials import ParameterEffects

__all__ = ["ParetoPlotData", "pareto_plot_data", "pareto_figure", "energy_label", "axis_type",
           "LOG_SPAN", "hypervolume_figure", "learning_curves_figure",
           "parameter_effects_figure"]

_UNITS = {"energy_j": "J", "duration_s": "s", "co2_g": "g CO2-eq", "accuracy": "0-1",
          "inference_energy": "pJ", "inference_energy_measured_j": "J"}
#: An energy axis is drawn on a log scale when its values span more than this factor.
LOG_SPAN = 30.0
# Colours of the front's trials in the learning curves (Plotly's default sequence).
_FRONT_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3",
                 "#ff6692", "#b6e880", "#ff97ff", "#fecb52")

# Long studies (thousands of trials): past these counts a plot draws an even sample of
# the dominated points, of the learning curves and of the hypervolume history's flat
# steps, so that pages and the figures saved for optuna-dashboard stay small. The front
# is always drawn in full.
MAX_DOMINATED_POINTS = 2000
MAX_CURVES = 100
MAX_HISTORY_POINTS = 2000
#: Front trials whose learning curves get a colour and a legend entry each; a longer
#: front (hundreds of trials in a long noisy study) draws an even sample of them.
MAX_FRONT_CURVES = 30


def _thin(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, evenly spaced, first and last included."""
    if len(frame) <= limit:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, limit).round().astype(int))
    return frame.iloc[keep]


def _shown(name: str, drawn: int, total: int) -> str:
    return name if drawn == total else f"{name} ({drawn:,} of {total:,} shown)"


class ParetoPlotData(NamedTuple):
    """What the Pareto plot shows: every feasible complete trial, and which axes."""

    frame: pd.DataFrame  # trials_frame(study): objectives, params_*, attributes, on_front
    x: str  # objective on the horizontal axis
    y: str  # objective on the vertical axis
    x_label: str
    y_label: str
    title: str
    objectives: tuple[str, ...] = ()  # every objective, in the study's order (for hover)


def energy_label(frame: pd.DataFrame) -> str:
    """How the energy figures were obtained, e.g. ``estimate, codecarbon``; with
    ``, shared`` where some trials ran at once and were charged their share of the
    readings, ``, unsplit`` where some include a whole-device reading other processes'
    trials may include too (``energy_attribution``, docs/scaling.md).

    Example:
        >>> energy_label(pd.DataFrame({"energy_meter": ["rapl+nvml"] * 2,
        ...                            "energy_is_estimate": [False] * 2,
        ...                            "energy_attribution": ["shared", "exclusive"]}))
        'measured, rapl+nvml, shared'
    """
    if "energy_meter" not in frame or frame.empty:
        return "meter unknown"
    meters = sorted(set(frame["energy_meter"].dropna()))
    estimate = bool(frame.get("energy_is_estimate", pd.Series([True])).fillna(True).any())
    attributions = (set(frame[ATTR_ENERGY_ATTRIBUTION].dropna())
                    if ATTR_ENERGY_ATTRIBUTION in frame else set())
    notes = "".join(f", {a}" for a in (ATTRIBUTION_SHARED, ATTRIBUTION_UNSPLIT)
                    if a in attributions)
    return f"{'estimate' if estimate else 'measured'}, {'/'.join(meters) or 'unknown'}{notes}"


def _axis_label(name: str, frame: pd.DataFrame) -> str:
    unit = _UNITS.get(name)
    label = f"{name} ({unit})" if unit else name
    if name == "inference_energy":
        label += " [estimate, ASIC model]"
    elif name == "co2_g" or is_energy_name(name):
        label += f" [{energy_label(frame)}]"
    return label


def axis_type(values: Sequence[float] | pd.Series, name: str | None = None) -> str:
    """``"log"`` for an energy axis whose positive values span more than :data:`LOG_SPAN`
    (so that cheap trials are not squashed against zero), else ``"linear"``.

    ``name``: the axis's objective; only energy objectives switch (``None``: energy).

    Example:
        >>> axis_type([1.0, 50.0]), axis_type([1.0, 20.0]), axis_type([1.0, 50.0], "accuracy")
        ('log', 'linear', 'linear')
    """
    if name is not None and not is_energy_name(name):
        return "linear"
    array = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    array = array[np.isfinite(array) & (array > 0)]
    return "log" if len(array) and array.max() / array.min() > LOG_SPAN else "linear"


def pareto_plot_data(study: optuna.Study, x: str | None = None,
                     y: str | None = None) -> ParetoPlotData:
    """Choose the axes (default: accuracy up, the first other objective across) and
    gather the trials."""
    names = objective_names(study)
    if len(names) < 2:
        raise ValueError("a Pareto plot needs a study with at least two objectives")
    if y is None:
        y = "accuracy" if "accuracy" in names else names[0]
    if x is None:
        x = next(name for name in names if name != y)
    for axis in (x, y):
        if axis not in names:
            raise ValueError(f"{axis!r} is not an objective of this study; expected {names}")
    frame = trials_frame(study)
    return ParetoPlotData(frame, x, y, _axis_label(x, frame), _axis_label(y, frame),
                          f"{study.study_name}: Pareto front of {y} against {x}", tuple(names))


def _value(value: object, unit: str | None = None) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit and unit != "0-1" else text


def _hover(frame: pd.DataFrame, objectives: Sequence[str] = ()) -> list[str]:
    """Per point: the trial, its objective values with units, then its parameters."""
    objectives = [c for c in objectives if c in frame]
    columns = [c for c in frame.columns if c.startswith("params_")]
    extra = [c for c in ("test_accuracy", "energy_meter") if c in frame]
    lines = []
    for _, row in frame.iterrows():
        parts = [f"<b>trial {row['trial']}</b>"]
        parts += [f"<b>{c} = {_value(row[c], _UNITS.get(c))}</b>" for c in objectives]
        parts += [f"{c.removeprefix('params_')} = {_value(row[c])}" for c in columns]
        parts += [f"{c} = {_value(row[c])}" for c in extra]
        lines.append("<br>".join(parts))
    return lines


def pareto_figure(data: ParetoPlotData, color_by: str | None = None) -> go.Figure:
    """Scatter of every trial, the front highlighted and joined; hover shows the trial's
    objective values (with units), then its parameters. An energy axis whose values span
    more than :data:`LOG_SPAN` is drawn on a log scale.

    ``color_by`` names a parameter (e.g. ``"width"``) to colour the points by.
    """
    frame = data.frame
    fig = go.Figure()
    others = frame[~frame["on_front"]] if len(frame) else frame
    front = frame[frame["on_front"]].sort_values(data.x) if len(frame) else frame
    color_column = f"params_{color_by}" if color_by else None
    if color_column and color_column not in frame:
        raise ValueError(f"cannot colour by {color_by!r}: not a parameter of this study")
    drawn = _thin(others, MAX_DOMINATED_POINTS)
    for part, name, symbol in ((drawn, _shown("dominated", len(drawn), len(others)),
                                "circle-open"),
                               (front, "Pareto front", "diamond")):
        on_front = name == "Pareto front"
        marker: dict = {"size": 12 if on_front else 9, "symbol": symbol}
        if color_column:
            marker.update(color=part[color_column], colorscale="Viridis",
                          showscale=on_front, colorbar={"title": color_by})
        else:
            marker.update(color="#1a7f37" if on_front else "#9aa0a6")
        fig.add_trace(go.Scatter(
            x=part[data.x], y=part[data.y], mode="markers", name=name, marker=marker,
            text=_hover(part, data.objectives or (data.y, data.x)),
            hovertemplate="%{text}<extra></extra>"))
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=front[data.x], y=front[data.y], mode="lines",
                                 line={"color": "#1a7f37", "shape": "hv", "dash": "dot"},
                                 showlegend=False, hoverinfo="skip"))
    add_interval_traces(fig, frame, data.x, data.y, data.objectives or (data.y, data.x))
    fig.update_layout(title=data.title, xaxis_title=data.x_label, yaxis_title=data.y_label,
                      template="plotly_white", legend={"orientation": "h", "y": -0.2})
    for axis, name in ((fig.layout.xaxis, data.x), (fig.layout.yaxis, data.y)):
        axis.type = axis_type(frame[name] if len(frame) else [], name)
    return fig


def hypervolume_figure(histories: Mapping[str, pd.DataFrame], title: str,
                       target: float | None = None, energy_note: str | None = None,
                       volume_unit: str | None = None, energy_unit: str = "J") -> go.Figure:
    """Hypervolume against cumulative search energy, one line per run.

    Args:
        histories: by label (a study or sampler name), frames of
            :func:`~ecotune.report.history.hypervolume_history`.
        target: a hypervolume drawn as a dashed horizontal line (e.g. 95 % of the
            reference hypervolume in a comparison).
        energy_note: how the energy was obtained (e.g. ``"estimate, codecarbon"``), shown
            on the energy axis.
        volume_unit: the hypervolume's unit, the product of the objectives' units (e.g.
            ``"0-1 x J"``).
        energy_unit: the unit of the energies in ``histories``.

    The energy axis is logarithmic where the cumulative energies span more than
    :data:`LOG_SPAN`.
    """
    fig = go.Figure()
    for label, history in histories.items():
        if len(history) > MAX_HISTORY_POINTS:
            # A step line: the trials that left the hypervolume unchanged draw nothing of
            # their own. Keep those that changed it, the last, and an even sample.
            steps = history["hypervolume"].diff().ne(0).to_numpy().copy()
            steps[-1] = True
            sample = history.index.isin(_thin(history, MAX_HISTORY_POINTS // 2).index)
            history = history[steps | sample]
        fig.add_trace(go.Scatter(
            x=history["cumulative_energy_j"], y=history["hypervolume"], name=label,
            mode="lines+markers", line={"shape": "hv"}, marker={"size": 5},
            text=[f"trial {n} ({s.lower()})" for n, s in zip(history["trial"],
                                                              history["state"])],
            hovertemplate=f"%{{text}}<br>energy spent %{{x:.4g}} {energy_unit}<br>"
                          "hypervolume %{y:.4g}<extra>%{fullData.name}</extra>"))
    if target is not None:
        fig.add_hline(y=target, line={"dash": "dash", "color": "#d1242f"},
                      annotation_text="95 % of the reference hypervolume")
    x_title = f"search energy spent (training + test evaluation), cumulative ({energy_unit})"
    if energy_note:
        x_title += f" [{energy_note}]"
    y_title = "hypervolume of the front" + (f" ({volume_unit})" if volume_unit else "")
    energies = [e for h in histories.values() for e in h["cumulative_energy_j"]]
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title,
                      template="plotly_white", xaxis_type=axis_type(energies))
    return fig


def learning_curves_figure(curves: pd.DataFrame, title: str,
                           front_trials: Collection[int] = ()) -> go.Figure:
    """Validation accuracy per epoch, one line per trial. The Pareto front's trials
    (``front_trials``) each get a colour and a legend entry of their own; the others are
    grey, early-stopped ones dashed, red and ended with a cross.
    """
    fig = go.Figure()
    shown = set()
    front = sorted(set(front_trials))
    trials = curves["trial"].drop_duplicates().sort_values()
    # Past MAX_CURVES trials, an even sample of the others; the front's all drawn up to
    # MAX_FRONT_CURVES, an even sample of it past that.
    all_front = len(front)
    front = sorted(_thin(pd.DataFrame({"trial": front}), MAX_FRONT_CURVES)["trial"])
    drawn = set(_thin(trials.to_frame(), MAX_CURVES)["trial"]) | set(front)
    if len(drawn) < len(trials):
        curves = curves[curves["trial"].isin(drawn)]
        of_front = ("the front's all" if len(front) == all_front
                    else f"{len(front):,} of the front's {all_front:,}")
        title = f"{title} ({len(drawn):,} of {len(trials):,} trials, {of_front})"
    for trial, curve in curves.groupby("trial", sort=True):
        early = bool(curve["early_stopped"].iloc[0])
        on_front = trial in front
        if on_front:
            group = f"trial {trial} (Pareto front)"
            color = _FRONT_COLORS[front.index(trial) % len(_FRONT_COLORS)]
        else:
            group = "other trials, early-stopped" if early else "other trials"
            color = "#d1242f" if early else "#9aa0a6"
        energy = [f"{e:.4g} J" if pd.notna(e) else "n/a" for e in curve["energy_j"]]
        fig.add_trace(go.Scatter(
            x=curve["epoch"], y=curve["val_accuracy"], mode="lines+markers",
            name=group, legendgroup=group, showlegend=group not in shown,
            legendrank=1 if on_front else 1000,
            line={"dash": "dash" if early else "solid", "color": color,
                  "width": 2.5 if on_front else 1.2},
            marker={"size": [4] * (len(curve) - 1) + [10 if early else 4],
                    "symbol": ["circle"] * (len(curve) - 1) + ["x" if early else "circle"]},
            opacity=1.0 if on_front else 0.6,
            text=[f"trial {trial}{' (Pareto front)' if on_front else ''}, "
                  f"{curve['stop_reason'].iloc[0] or curve['state'].iloc[0]}"
                  f"<br>energy so far {e}" for e in energy],
            hovertemplate="%{text}<br>epoch %{x}: accuracy %{y:.4f}<extra></extra>"))
        shown.add(group)
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="validation accuracy",
                      template="plotly_white")
    return fig


def parameter_effects_figure(effects: ParameterEffects, title: str) -> go.Figure:
    """A grid of scatter plots: one row per objective, one column per parameter; front
    trials highlighted."""
    from plotly.subplots import make_subplots

    rows, cols = max(len(effects.objectives), 1), max(len(effects.params), 1)
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, shared_xaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.08)
    frame = effects.frame
    others = frame[~frame["on_front"].astype(bool)] if len(frame) else frame
    parts = {False: _thin(others, MAX_DOMINATED_POINTS),
             True: frame[frame["on_front"].astype(bool)] if len(frame) else frame}
    for r, objective in enumerate(effects.objectives, start=1):
        for c, param in enumerate(effects.params, start=1):
            for on_front, color in ((False, "#9aa0a6"), (True, "#1a7f37")):
                part = parts[on_front]
                fig.add_trace(go.Scatter(
                    x=part[f"params_{param}"], y=part[objective], mode="markers",
                    marker={"color": color, "size": 7}, name="Pareto front" if on_front
                    else _shown("dominated", len(part), len(others)),
                    legendgroup=str(on_front),
                    showlegend=r == 1 and c == 1, text=[f"trial {n}" for n in part["trial"]],
                    hovertemplate=f"%{{text}}<br>{param} = %{{x}}<br>{objective} = "
                                  "%{y:.4g}<extra></extra>"), row=r, col=c)
            fig.update_xaxes(title_text=param if r == rows else None, row=r, col=c,
                             type="log" if param in effects.log_params else None)
            if c == 1:
                fig.update_yaxes(title_text=_axis_label(objective, frame), row=r, col=1)
        # Every column of a row shares its y axis, so all take the same scale.
        fig.update_yaxes(type=axis_type(frame[objective] if len(frame) else [], objective),
                         row=r)
    # No fixed pixel size: the figure fills its container (optuna-dashboard's card, the
    # report page). `meta` keeps the grid's shape for a PNG's or a page's size.
    fig.update_layout(title=title, template="plotly_white", autosize=True,
                      meta={"grid": [rows, cols]})
    return fig
