"""How long the quickstart's report takes, with and without PNGs, and what one PNG costs.

Runs the quickstart study (studies/quickstart.toml, 16 trials, about a minute) into a
temporary SQLite file unless ``--storage`` names one that holds it, then in one process:

1. ``write_report`` without PNGs and with PNGs (median of ``--rounds``), and the size of
   the report folder;
2. the PNG of each of the report's four figures, three ways:
   - ecotune's: one Chromium session for all of a report's figures, no page reload
     between them (``ecotune.report._png``);
   - kaleido's sync server (one browser per process, page reloaded after each figure);
   - one browser per figure (``fig.write_image`` with no server running).
   For each: the first figure (browser start included) and the mean of the rest, and the
   ratio of the rest against ecotune's way.

Targets (issue 12): folder under 6 MB; at most 0.3 s per PNG after the first.

    .venv/bin/python benchmarks/report.py [--rounds 3] [--storage sqlite:///ecotune.db]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from ecotune.report import report_figures, write_report
from ecotune.report._png import _kaleido_class, png_export_available, png_size

QUICKSTART = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"


def _specs(figures: dict, out: Path) -> list[dict]:
    specs = []
    for name, figure in figures.items():
        width, height = png_size(figure)
        specs.append({"fig": figure.to_dict(), "path": out / f"{name}.png",
                      "opts": {"format": "png", "width": width, "height": height,
                               "scale": 1}})
    return specs


async def _one_session(specs: list[dict]) -> list[float]:
    """Seconds per figure in one ecotune session; the first includes the browser start."""
    times, start = [], time.perf_counter()
    async with _kaleido_class()(n=1) as session:
        for spec in specs:
            await session.write_fig_from_object([spec], cancel_on_error=True)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
    return times


def _sync_server(specs: list[dict]) -> list[float]:
    import kaleido

    times, start = [], time.perf_counter()
    kaleido.start_sync_server(n=1, silence_warnings=True)
    for spec in specs:
        kaleido.write_fig_from_object_sync([spec])
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
    kaleido.stop_sync_server(silence_warnings=True)
    return times


def _browser_per_figure(figures: dict, out: Path) -> list[float]:
    times = []
    for name, figure in figures.items():
        width, height = png_size(figure)
        start = time.perf_counter()
        figure.write_image(out / f"{name}.png", width=width, height=height, scale=1)
        times.append(time.perf_counter() - start)
    return times


def _median_s(action, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", help="a storage holding the study 'quickstart'")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        storage = args.storage
        if storage is None:
            import ecotune

            storage = f"sqlite:///{work / 'quickstart.db'}"
            start = time.perf_counter()
            ecotune.run(QUICKSTART, storage=storage)
            print(f"quickstart study: 16 trials in {time.perf_counter() - start:.1f} s")
        study = optuna.load_study(study_name="quickstart", storage=storage)

        without = _median_s(lambda: write_report(study, work / "plain", png=False,
                                                 dashboard=False), args.rounds)
        size_mb = sum(p.stat().st_size for p in (work / "plain").iterdir()) / 1e6
        print(f"report without PNGs: {without:.2f} s (median of {args.rounds}); "
              f"folder {size_mb:.2f} MB")
        if not png_export_available():
            print("no Chromium for kaleido: PNG timings skipped")
            return
        with_png = _median_s(lambda: write_report(study, work / "png", png=True,
                                                  dashboard=False), args.rounds)
        size_mb = sum(p.stat().st_size for p in (work / "png").iterdir()) / 1e6
        print(f"report with PNGs:    {with_png:.2f} s (median of {args.rounds}); "
              f"folder {size_mb:.2f} MB; PNGs add {with_png - without:.2f} s")

        figures = report_figures(study)
        (work / "figs").mkdir()
        ways = {
            "one session (ecotune)": asyncio.run(_one_session(_specs(figures, work / "figs"))),
            "sync server, reload": _sync_server(_specs(figures, work / "figs")),
            "browser per figure": _browser_per_figure(figures, work / "figs"),
        }
        base = statistics.mean(ways["one session (ecotune)"][1:])
        print(f"\nPNG of each of the {len(figures)} figures ({', '.join(figures)}), seconds:")
        print(f"{'way':<24}{'first':>8}{'rest, each':>12}{'rest vs ecotune':>17}"
              f"{'all':>8}")
        for way, times in ways.items():
            rest = statistics.mean(times[1:])
            print(f"{way:<24}{times[0]:>8.2f}{rest:>12.3f}{rest / base:>16.2f}x"
                  f"{sum(times):>8.2f}")


if __name__ == "__main__":
    main()
