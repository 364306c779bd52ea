"""PNG export of a report's figures through one Chromium session (kaleido).

Launching Chromium and loading plotly.js into it costs 1.7 s on an idle 2-core machine
(3-4 s under load), far more than drawing a figure. So the browser is started once per
process (kaleido's sync server, :func:`start_browser`), early enough to start while the
report's other files are written, and a report's figures go to it in one batch.
``benchmarks/report.py`` measures it against one browser per figure.
"""

from __future__ import annotations

import functools
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["png_export_available", "start_browser", "write_pngs", "png_size"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


@functools.cache
def png_export_available() -> bool:
    """Whether kaleido can find a Chrome/Chromium for PNG export. Cached; never raises."""
    try:
        import kaleido  # noqa: F401
    except Exception:
        return False
    return any(shutil.which(b) for b in _BROWSERS)


def png_size(figure: go.Figure) -> tuple[int, int]:
    """Width and height in pixels of ``figure``'s PNG: its own size where it has one; a
    grid of subplots (``layout.meta["grid"]`` = rows, columns) sized by its cells."""
    meta = figure.layout.meta if isinstance(figure.layout.meta, dict) else {}
    rows, cols = meta.get("grid", (0, 0))
    width = figure.layout.width or max(900, 280 * cols)
    height = figure.layout.height or (300 * rows + 100 if rows else 600)
    return int(width), int(height)


def start_browser() -> None:
    """Start the process's one browser for PNG export, in the background (it returns at
    once; the first export waits for the browser to be ready). Does nothing when it runs
    already."""
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)


def png_specs(figures: Mapping[Path, go.Figure]) -> list[dict]:
    """kaleido's description of each PNG to write: figure, path and size."""
    specs = []
    for path, figure in figures.items():
        width, height = png_size(figure)
        specs.append({"fig": figure.to_dict(), "path": Path(path),
                      "opts": {"format": "png", "width": width, "height": height,
                               "scale": 1}})
    return specs


def write_pngs(figures: Mapping[Path, go.Figure]) -> None:
    """Write each figure as a PNG at its path (:func:`png_size`), all in one batch to the
    process's one browser. Works where an event loop is already running (a notebook):
    the browser's loop runs in a thread of its own."""
    if not figures:
        return
    import kaleido

    specs = png_specs(figures)
    for attempt in (1, 2):
        start_browser()
        try:
            with warnings.catch_warnings():
                # The sync server ignores per-call browser options; nothing to warn about.
                warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                kaleido.write_fig_from_object_sync(specs, cancel_on_error=True)
            return
        except Exception:
            # On a loaded machine kaleido can call into its tab before the tab's own
            # script has loaded ("kaleido_scopes is not defined"), which closes the
            # browser: once more with a fresh one before giving up.
            kaleido.stop_sync_server(silence_warnings=True)
            if attempt == 2:
                raise
