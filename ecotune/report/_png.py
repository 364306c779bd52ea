"""PNG export of a report's figures through one Chromium session (kaleido).

Launching Chromium costs about 1.7 s, and kaleido reloads its page (plotly.js, 4.8 MB)
after every figure by default: together about 0.3-0.6 s per figure on a 2-core machine.
A report's figures are exported here in one batch, in one browser, without the reload
between them; Plotly's ``toImage`` draws each figure in a fresh element that it removes
again, so one figure cannot leak into the next. ``benchmarks/report.py`` measures it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import shutil
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go

__all__ = ["png_export_available", "start_pngs", "write_pngs", "png_size"]

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


@functools.cache
def _kaleido_class() -> type:
    import kaleido

    base = kaleido.Kaleido
    if not hasattr(base, "_return_kaleido_tab") or not hasattr(base, "tabs_ready"):
        return base  # another kaleido version: keep its reload between figures

    class _OneSessionKaleido(base):
        async def _return_kaleido_tab(self, tab) -> None:  # noqa: ANN001
            # Skip kaleido's page reload after each figure (see the module docstring).
            await self.tabs_ready.put(tab)

    return _OneSessionKaleido


async def _export(specs: list[dict]) -> None:
    async with _kaleido_class()(n=1) as session:
        await session.write_fig_from_object(specs, cancel_on_error=True)


def start_pngs(figures: Mapping[Path, go.Figure]) -> concurrent.futures.Future:
    """Start writing each figure as a PNG at its path (:func:`png_size`), in one browser
    session, in a thread of its own; ``.result()`` waits for it and raises its error.

    The thread lets the browser start while the caller writes its other files, and works
    where an event loop is already running (a notebook). The paths' folders must exist.
    """
    specs = []
    for path, figure in figures.items():
        width, height = png_size(figure)
        specs.append({"fig": figure.to_dict(), "path": Path(path),
                      "opts": {"format": "png", "width": width, "height": height,
                               "scale": 1}})
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, _export(specs)) if specs else pool.submit(lambda: None)
    pool.shutdown(wait=False)
    return future


def write_pngs(figures: Mapping[Path, go.Figure]) -> None:
    """Write each figure as a PNG at its path, in one browser session (see
    :func:`start_pngs`)."""
    start_pngs(figures).result()
