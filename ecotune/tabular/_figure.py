"""Drawing replay summaries against search energy, with 95 % bands: the mean hypervolume
ratio, and the mean log hypervolume difference (``log10(1 - HV / HV_ref)``)."""

from __future__ import annotations

import pandas as pd

__all__ = ["replay_figure", "log_hv_difference_figure"]

_X_TITLE = "search energy spent (training + test evaluation), cumulative (J)"

_COLOURS = ("#0969da", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#e16f24",
            "#0a3069", "#cf222e", "#116329")


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _bands(curves: pd.DataFrame, value: str):
    """One line per method (the mean over repeats) with its 95 % confidence band."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (method, curve) in enumerate(curves.groupby("method", sort=False)):
        colour = _COLOURS[i % len(_COLOURS)]
        fig.add_trace(go.Scatter(
            x=list(curve["energy_j"]) + list(curve["energy_j"])[::-1],
            y=list(curve["high"]) + list(curve["low"])[::-1], fill="toself",
            fillcolor=_rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip",
            legendgroup=method, showlegend=False))
        fig.add_trace(go.Scatter(
            x=curve["energy_j"], y=curve["mean"], name=method, legendgroup=method,
            line={"color": colour, "shape": "hv"},
            hovertemplate=f"%{{x:.4g}} J: mean {value} %{{y:.3f}}"
                          "<extra>%{fullData.name}</extra>"))
    return fig


def replay_figure(curves: pd.DataFrame, title: str, levels: tuple[float, ...] = (0.95,)):
    """One line per method (the mean over repeats) with its 95 % confidence band, from
    :func:`~ecotune.tabular.mean_curves`; dashed lines at ``levels``."""
    fig = _bands(curves, "ratio")
    for level in levels:
        fig.add_hline(y=level, line={"dash": "dash", "color": "#57606a"},
                      annotation_text=f"{level:.0%} of the reference hypervolume")
    fig.update_layout(title=title, xaxis_title=_X_TITLE,
                      yaxis_title="hypervolume / the table's (mean, 95 % band)",
                      template="plotly_white")
    return fig


def log_hv_difference_figure(curves: pd.DataFrame, title: str,
                             levels: tuple[float, ...] = (0.99, 0.995)):
    """The log hypervolume difference against search energy (lower is better), one line
    per method with its 95 % band, from ``mean_curves(..., metric="log_hv_difference")``;
    dashed lines where it equals ``levels`` of the reference hypervolume."""
    import math

    from ecotune.pareto import LOG_HV_DIFFERENCE_FLOOR

    fig = _bands(curves, "log10(1 - HV/HV_ref)")
    for level in levels:
        fig.add_hline(y=math.log10(1 - level), line={"dash": "dash", "color": "#57606a"},
                      annotation_text=f"{level:.1%} of the reference hypervolume")
    fig.update_layout(title=title, xaxis_title=_X_TITLE,
                      yaxis_title="log10(1 - hypervolume / the table's) (mean, 95 % band; "
                                  f"floor {LOG_HV_DIFFERENCE_FLOOR:g})",
                      template="plotly_white")
    return fig
