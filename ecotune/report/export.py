"""Write a study's report to a directory: pareto.html (self-contained, works offline),
front.csv, front.json, and pareto.png where a browser for static export is present."""

from __future__ import annotations

import functools
import json
import math
import shutil
import warnings
from pathlib import Path

import optuna

from ecotune.report.front import pareto_front
from ecotune.report.plots import energy_label, pareto_figure, pareto_plot_data

__all__ = ["write_report", "png_export_available", "safe_name"]

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


def write_report(study: optuna.Study, out_dir: str | Path, png: bool | None = None,
                 color_by: str | None = None) -> dict[str, Path]:
    """Write the report of ``study`` into ``out_dir`` (created if needed).

    Args:
        png: write ``pareto.png`` too; default: where a browser is present.
        color_by: a parameter to colour the Pareto plot by.

    Returns:
        The written files by kind: ``html``, ``csv``, ``json`` and maybe ``png``.
    """
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
    if len(study.directions) >= 2:
        figure = pareto_figure(pareto_plot_data(study), color_by=color_by)
        paths["html"] = out / "pareto.html"
        # include_plotlyjs=True embeds plotly.js: the page works with no internet.
        figure.write_html(paths["html"], include_plotlyjs=True)
        if png if png is not None else png_export_available():
            _start_browser()
            paths["png"] = out / "pareto.png"
            with warnings.catch_warnings():
                # plotly passes browser options that a running kaleido server ignores.
                warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                figure.write_image(paths["png"], width=900, height=600, scale=1)
    return paths
