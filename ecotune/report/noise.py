"""The front with its measurement noise: mean and interval columns from the repeats
``ecotune confirm`` stored (:mod:`ecotune.noise`), the front of the means, the front
points whose intervals overlap (the meter cannot order them), and the plot's error bars.

Columns (only on studies with repeats), for each repeated figure F (``energy_j``,
``duration_s``): ``F_mean``, ``F_std``, ``F_ci_low``, ``F_ci_high`` (the 95 % Student-t
interval of the mean over the original measurement and the repeats), and
``measurements`` (original plus repeats; 1 where a trial has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import optuna
import pandas as pd

from ecotune.noise import MEASURED, Interval, intervals_of, stored_repeats
from ecotune.pareto import non_dominated

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["add_noise_columns", "has_repeats", "mean_values", "confirmed_mask",
           "overlapping", "confirmed_count", "interval_cell", "add_interval_traces",
           "OVERLAP_COLOR"]

#: The ring drawn around front points whose intervals overlap another's.
OVERLAP_COLOR = "#d1242f"


def add_noise_columns(frame: pd.DataFrame, study: optuna.Study) -> pd.DataFrame:
    """``frame`` (one row per trial, ``trial`` its number) with the noise columns, where
    the study holds repeats; otherwise unchanged."""
    records = stored_repeats(study)
    if not records or frame.empty:
        return frame
    columns: dict[str, list] = {"measurements": []}
    for figure in MEASURED:
        for part in ("mean", "std", "ci_low", "ci_high"):
            columns[f"{figure}_{part}"] = []
    for number in frame["trial"]:
        record = records.get(int(number))
        intervals = (intervals_of(record.get("original", {}), record.get("repeats", []))
                     if record else {})
        columns["measurements"].append(
            max((iv.n for iv in intervals.values()), default=1))
        for figure in MEASURED:
            iv = intervals.get(figure)
            columns[f"{figure}_mean"].append(iv.mean if iv else np.nan)
            columns[f"{figure}_std"].append(iv.std if iv else np.nan)
            columns[f"{figure}_ci_low"].append(iv.low if iv else np.nan)
            columns[f"{figure}_ci_high"].append(iv.high if iv else np.nan)
    return frame.assign(**columns)


def has_repeats(frame: pd.DataFrame) -> bool:
    return "measurements" in frame and bool((frame["measurements"] > 1).any())


def mean_values(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The objectives of ``frame``, each repeated figure replaced by its mean where the
    trial has repeats."""
    values = frame[list(names)].to_numpy(dtype=float, copy=True)
    for j, name in enumerate(names):
        column = f"{name}_mean"
        if column in frame:
            means = frame[column].to_numpy(dtype=float)
            repeated = frame["measurements"].to_numpy() > 1
            values[repeated, j] = means[repeated]
    return values


def confirmed_mask(frame: pd.DataFrame, names: Sequence[str],
                   maximize: Sequence[bool]) -> np.ndarray:
    """Which rows are on the front of the means (:func:`mean_values`)."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    return non_dominated(mean_values(frame, names), maximize)


def _intervals(row: pd.Series, names: Sequence[str]) -> dict[str, Interval]:
    out = {}
    for name in names:
        if name in MEASURED and f"{name}_ci_low" in row and row["measurements"] > 1:
            out[name] = Interval(int(row["measurements"]), row[f"{name}_mean"],
                                 row[f"{name}_std"], row[f"{name}_ci_low"],
                                 row[f"{name}_ci_high"])
    return out


def overlapping(front: pd.DataFrame, names: Sequence[str]) -> list[list[int]]:
    """Per row of ``front``, the trials of ``front`` whose intervals overlap its own in
    every repeated objective: the meter cannot say which of them costs less. Rows
    without repeats overlap nothing (they have no interval)."""
    intervals = [_intervals(row, names) for _, row in front.iterrows()]
    numbers = front["trial"].tolist() if len(front) else []
    result = []
    for i, mine in enumerate(intervals):
        hits = []
        for j, theirs in enumerate(intervals):
            if i != j and mine and set(mine) == set(theirs) \
                    and all(mine[k].overlaps(theirs[k]) for k in mine):
                hits.append(int(numbers[j]))
        result.append(hits)
    return result


def confirmed_count(front: pd.DataFrame) -> tuple[int, int]:
    """(confirmed, overlapping) front points of :func:`ecotune.report.pareto_front`'s
    table: confirmed = repeated, on the front of the means, and its interval clear of
    every other front point's."""
    if "measurements" not in front:
        return 0, 0
    overlaps = front["overlaps"].map(len) > 0
    confirmed = (front["measurements"] > 1) & front["on_confirmed_front"] & ~overlaps
    return int(confirmed.sum()), int(overlaps.sum())


def interval_cell(row: pd.Series, name: str) -> str:
    """``mean [low, high] (n=K)`` of figure ``name`` in a front row; ``-`` unrepeated;
    ``*`` marks a point whose interval overlaps another front point's.

    Example:
        >>> interval_cell(pd.Series({"measurements": 3, "energy_j_mean": 12.0,
        ...     "energy_j_ci_low": 7.03, "energy_j_ci_high": 16.97, "overlaps": [4]}),
        ...     "energy_j")
        '12 [7.03, 16.97] (n=3) *'
    """
    if row.get("measurements", 1) <= 1:
        return "-"
    mark = " *" if len(row.get("overlaps", ()) or ()) else ""
    return (f"{row[name + '_mean']:.4g} [{row[name + '_ci_low']:.4g}, "
            f"{row[name + '_ci_high']:.4g}] (n={int(row['measurements'])}){mark}")


def add_interval_traces(fig: go.Figure, frame: pd.DataFrame, x: str, y: str,
                        names: Sequence[str]) -> None:
    """Draw each repeated trial's mean with its 95 % interval as error bars on the axes
    of repeated figures, and ring the front points whose intervals overlap."""
    if not has_repeats(frame):
        return
    import plotly.graph_objects as go  # drawing only: the data functions need no plotly

    repeated = frame[frame["measurements"] > 1]

    def axis(name: str) -> tuple[pd.Series, dict | None]:
        if f"{name}_mean" not in repeated:
            return repeated[name], None
        mean = repeated[f"{name}_mean"]
        return mean, {"type": "data", "symmetric": False, "color": "#444",
                      "array": (repeated[f"{name}_ci_high"] - mean).tolist(),
                      "arrayminus": (mean - repeated[f"{name}_ci_low"]).tolist(),
                      "thickness": 1.5, "width": 4}

    x_mean, error_x = axis(x)
    y_mean, error_y = axis(y)
    text = [f"trial {int(r['trial'])}: mean of {int(r['measurements'])} measurements"
            + "".join(f"<br>{f} = {r[f + '_mean']:.4g} "
                      f"[{r[f + '_ci_low']:.4g}, {r[f + '_ci_high']:.4g}]"
                      for f in MEASURED if f"{f}_mean" in r and f in names)
            for _, r in repeated.iterrows()]
    fig.add_trace(go.Scatter(x=x_mean, y=y_mean, mode="markers", name="mean, 95 % interval",
                             marker={"size": 6, "symbol": "line-ns-open" if error_x else
                                     "line-ew-open", "color": "#444"},
                             error_x=error_x, error_y=error_y, text=text,
                             hovertemplate="%{text}<extra></extra>"))
    front = frame[frame["on_front"]]
    hits = overlapping(front, names)
    ringed = front[[bool(h) for h in hits]]
    if len(ringed):
        fig.add_trace(go.Scatter(
            x=ringed[x], y=ringed[y], mode="markers",
            name="front point the meter cannot order (intervals overlap)",
            marker={"size": 20, "symbol": "circle-open", "color": OVERLAP_COLOR,
                    "line": {"width": 2}},
            text=[f"trial {int(n)} overlaps trial(s) {', '.join(map(str, h))}"
                  for n, h in zip(ringed["trial"], (h for h in hits if h))],
            hovertemplate="%{text}<extra></extra>"))
