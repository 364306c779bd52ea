"""The report's ``index.html``: every plot and the front's table on one page.

The page loads plotly.js from ``plotly.min.js`` beside it (the one copy in the report
folder, shared with the per-plot pages), so it works offline and the folder stays small:
keep the folder together when you move it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ecotune.report.noise import interval_cell

__all__ = ["PLOTLYJS_FILE", "report_page", "write_plotlyjs"]

#: plotly.js, written once into each report folder.
PLOTLYJS_FILE = "plotly.min.js"

_TITLES = {"front": "The front's trials", "pareto": "Pareto front",
           "hypervolume": "Hypervolume against search energy",
           "learning_curves": "Learning curves", "parameters": "Objectives against parameters"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #1f2328; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #d0d7de; }
.summary, .notes { color: #57606a; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #d0d7de; text-align: right; }
th { background: #f6f8fa; }
.plot { width: 100%; }
"""


def write_plotlyjs(out: Path) -> Path:
    """Write plotly.js (the version plotly.py draws with) into ``out``; returns its path."""
    from plotly.offline import get_plotlyjs

    path = out / PLOTLYJS_FILE
    path.write_text(get_plotlyjs(), encoding="utf-8")
    return path


def _height_px(figure: go.Figure) -> int:
    meta = figure.layout.meta if isinstance(figure.layout.meta, dict) else {}
    rows = meta.get("grid", (0, 0))[0]
    return int(figure.layout.height or (300 * rows + 100 if rows else 560))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return html.escape(str(value))


def _front_table(front: pd.DataFrame, objectives: Sequence[str]) -> str:
    params = [c for c in front.columns if c.startswith("params_")]
    extra = [c for c in ("test_accuracy", "energy_meter") if c in front.columns]
    columns = ["trial", *[o for o in objectives if o in front.columns], *params, *extra]
    # After `ecotune confirm`: each repeated objective's mean and interval (report.noise).
    intervals = [o for o in objectives if f"{o}_ci_low" in front.columns]
    head = "".join(f"<th>{html.escape(c.removeprefix('params_'))}</th>" for c in columns)
    head += "".join(f"<th>{html.escape(o)} mean [95 % interval]</th>" for o in intervals)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(row[c])}</td>" for c in columns)
                   + "".join(f"<td>{html.escape(interval_cell(row, o))}</td>"
                             for o in intervals) + "</tr>"
                   for _, row in front.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def report_page(study_name: str, figures: Mapping[str, go.Figure], front: pd.DataFrame,
                objectives: Sequence[str], summary: str,
                not_drawn: Mapping[str, str] | None = None,
                files: Sequence[str] = ()) -> str:
    """The HTML of ``index.html``.

    Args:
        figures: the plots by name (``pareto``, ``hypervolume``, ...), in page order.
        front: the Pareto front table (:func:`~ecotune.report.front.pareto_front`).
        objectives: the study's objective names (the table's first columns).
        summary: one line under the title (trials, energy meter).
        not_drawn: plots left out, with the reason for each.
        files: the report's other files, linked at the bottom.

    Example:
        >>> page = report_page("demo", {}, pd.DataFrame({"trial": [0], "accuracy": [0.9]}),
        ...                    ["accuracy"], "1 trial")
        >>> "<td>0.9</td>" in page and PLOTLYJS_FILE in page
        True
    """
    title = html.escape(f"{study_name}: ecotune report")
    sections = [f'<h2 id="front">The front\'s trials ({len(front)})</h2>',
                _front_table(front, objectives)]
    for name, figure in figures.items():
        div = figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}",
                             default_width="100%", default_height=f"{_height_px(figure)}px",
                             config={"responsive": True})
        sections.append(f'<h2 id="{name}">{html.escape(_TITLES.get(name, name))}</h2>'
                        f'<div class="plot">{div}</div>')
    nav = "".join(f'<a href="#{n}">{html.escape(_TITLES.get(n, n))}</a>'
                  for n in ["front", *figures])
    notes = "".join(f"<li>{html.escape(_TITLES.get(n, n))}: {html.escape(r)}</li>"
                    for n, r in (not_drawn or {}).items())
    if notes:
        notes = f'<p class="notes">Not drawn:</p><ul class="notes">{notes}</ul>'
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>'
                    for f in files)
    if links:
        links = f'<h2 id="files">Files</h2><ul>{links}</ul>'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{_STYLE}</style>"
            f'<script src="{PLOTLYJS_FILE}" charset="utf-8"></script></head><body>'
            f'<h1>{title}</h1><p class="summary">{html.escape(summary)}</p>'
            f"<nav>{nav}</nav>{notes}{''.join(sections)}{links}</body></html>\n")
