"""Drawing replay summaries: mean hypervolume ratio against search energy, with bands."""

from __future__ import annotations

import pandas as pd

__all__ = ["replay_figure"]

_COLOURS = ("#0969da", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#e16f24",
            "#0a3069", "#cf222e", "#116329")


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def replay_figure(curves: pd.DataFrame, title: str, levels: tuple[float, ...] = (0.95,)):
    """One line per method (the mean over repeats) with its 95 % confidence band, from
    :func:`~ecotune.tabular.mean_curves`; dashed lines at ``levels``."""
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
            hovertemplate="%{x:.4g} J: mean ratio %{y:.3f}<extra>%{fullData.name}</extra>"))
    for level in levels:
        fig.add_hline(y=level, line={"dash": "dash", "color": "#57606a"},
                      annotation_text=f"{level:.0%} of the reference hypervolume")
    fig.update_layout(title=title,
                      xaxis_title="search energy spent (training + test evaluation), "
                                  "cumulative (J)",
                      yaxis_title="hypervolume / the table's (mean, 95 % band)",
                      template="plotly_white")
    return fig
