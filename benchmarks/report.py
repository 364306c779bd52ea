"""How long the quickstart's report takes, with and without PNGs, and what one PNG costs.

Runs the quickstart study (studies/quickstart.toml, 16 trials, about a minute) into a
temporary SQLite file unless ``--storage`` names one that holds it, then in one process:

1. ``write_report`` without PNGs and with PNGs (median of ``--rounds``; each report starts
   and stops its browser, as a new process does), the size of the report folder, and the
   whole ``ecotune report`` command with and without PNGs;
2. the PNG of each of the report's four figures, two ways:
   - ecotune's: one Chromium per process (kaleido's sync server), a report's figures
     sent to it in one batch (``ecotune.report._png``);
   - one browser per figure (``fig.write_image`` with no server running).
   For each, medians over the rounds (the ways alternate): the first figure (browser
   start included), each of the rest, and the rest against ecotune's way as a ratio.

Targets (issue 12): folder under 6 MB; at most 0.3 s per PNG after the first.

    .venv/bin/python benchmarks/report.py [--rounds 3] [--storage sqlite:///ecotune.db]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from ecotune.report import png_export_available, png_size, report_figures, write_pngs, write_report

QUICKSTART = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"


def _stop_browser() -> None:
    # So that the next report pays the browser's start, as a new `ecotune report` does.
    import kaleido

    kaleido.stop_sync_server(silence_warnings=True)


def _one_browser(figures: dict, out: Path) -> list[float]:
    """Seconds per figure as ``write_report`` draws them: the browser started, the first
    figure, then the rest in one batch (their mean)."""
    paths = {out / f"{name}.png": figure for name, figure in figures.items()}
    first_path, *rest = paths
    start = time.perf_counter()
    write_pngs({first_path: paths[first_path]})
    first = time.perf_counter() - start
    start = time.perf_counter()
    write_pngs({path: paths[path] for path in rest})
    each = (time.perf_counter() - start) / len(rest)
    _stop_browser()
    return [first] + [each] * len(rest)


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
        def report_with_png() -> None:
            write_report(study, work / "png", png=True, dashboard=False)
            _stop_browser()

        with_png = _median_s(report_with_png, args.rounds)
        size_mb = sum(p.stat().st_size for p in (work / "png").iterdir()) / 1e6
        print(f"report with PNGs:    {with_png:.2f} s (median of {args.rounds}); "
              f"folder {size_mb:.2f} MB; PNGs add {with_png - without:.2f} s")

        # What a user waits for: the whole command, imports and browser shutdown included.
        command = [sys.executable, "-m", "ecotune", "report", "--storage", storage,
                   "--study-name", "quickstart", "--out", str(work / "cli")]
        cli = {label: _median_s(lambda extra=extra: subprocess.run(
                   command + extra, check=True, capture_output=True), args.rounds)
               for label, extra in (("--no-png", ["--no-png"]), ("with PNGs", []))}
        print(f"`ecotune report` command: {cli['--no-png']:.2f} s with --no-png, "
              f"{cli['with PNGs']:.2f} s with PNGs (median of {args.rounds})")

        figures = report_figures(study)
        (work / "figs").mkdir()
        ways: dict[str, list[list[float]]] = {"one browser (ecotune)": [],
                                              "browser per figure": []}
        for _ in range(args.rounds):  # the ways alternate, so that each sees the same load
            ways["one browser (ecotune)"].append(_one_browser(figures, work / "figs"))
            ways["browser per figure"].append(_browser_per_figure(figures, work / "figs"))
        rest_s = {way: statistics.median(t for run in runs for t in run[1:])
                  for way, runs in ways.items()}
        base = rest_s["one browser (ecotune)"]
        print(f"\nPNG of each of the {len(figures)} figures ({', '.join(figures)}), seconds, "
              f"medians over {args.rounds} round(s):")
        print(f"{'way':<24}{'first':>8}{'rest, each':>12}{'rest vs ecotune':>17}"
              f"{'all 4':>8}")
        for way, runs in ways.items():
            first = statistics.median(run[0] for run in runs)
            total = statistics.median(sum(run) for run in runs)
            print(f"{way:<24}{first:>8.2f}{rest_s[way]:>12.3f}{rest_s[way] / base:>16.2f}x"
                  f"{total:>8.2f}")

if __name__ == "__main__":
    main()
