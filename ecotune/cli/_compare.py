"""``ecotune compare``: one search space under several samplers."""

from __future__ import annotations

import argparse

from rich.console import Console

from ecotune.cli._common import (
    REPORT_ROOT,
    BadInput,
    _choose_storage,
    _file_storage,
    _print_paths,
    _storage_failed,
)
from ecotune.spec import SpecError, load_spec


def _compare(args: argparse.Namespace, console: Console) -> int:
    if args.record is not None and args.replay is not None:
        raise BadInput("--record and --replay cannot be used together: record a table first")
    if args.record is not None:
        from ecotune.cli._tabular import _record

        return _record(args, console)
    if args.replay is not None:
        from ecotune.cli._tabular import _replay

        return _replay(args, console)
    if args.n_trials is None:
        raise BadInput("--n-trials is required (except with --record or --replay)")
    from ecotune.comparison import comparison_runs

    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    try:
        spec = load_spec(args.study_file)
        storage, source = _choose_storage(args.storage, _file_storage(spec))
        spec = spec.with_overrides(storage=storage)
        runs = comparison_runs(spec, samplers, args.n_trials, args.repeats)
    except SpecError as err:
        raise BadInput(f"{err} (leave it out of --samplers, or give the float "
                       "parameters a grid)" if "grid" in str(err) else str(err)) from None
    except ValueError as err:
        raise BadInput(str(err)) from None

    import optuna

    from ecotune.comparison import run_comparison
    from ecotune.report import safe_name
    from ecotune.report.compare import TARGET_FRACTION, compare_studies
    from ecotune.report.export import write_figure
    from ecotune.report.plots import hypervolume_figure

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from ecotune.storage import describe_storage, redact_url

    try:
        existing = set(optuna.get_all_study_names(storage))  # summaries read every trial
    except Exception as err:
        raise _storage_failed(storage, err) from None
    taken = [s.study.name for _, _, s in runs if s.study.name in existing]
    if taken:
        raise BadInput(f"study {taken[0]!r} already exists in {redact_url(storage)}: compare "
                       "runs fresh studies; use another --storage or study name")
    console.print(f"comparing {', '.join(samplers)}: {args.repeats} run(s) of "
                  f"{args.n_trials} trial(s) each, in {describe_storage(storage, source)}",
                  highlight=False)

    def done(sampler: str, repeat: int, study: optuna.Study) -> None:
        states = [t.state.name for t in study.trials]
        console.print(f"  {study.study_name}: {states.count('COMPLETE')} complete, "
                      f"{len(states) - states.count('COMPLETE')} other", highlight=False)

    studies = run_comparison(runs, on_run=done)
    comparison = compare_studies(studies)
    _print_comparison(comparison, console)
    out = args.out or REPORT_ROOT / safe_name(f"{spec.study.name}-compare")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "compare.csv", "histories": out / "compare-hypervolume.csv"}
    comparison.table.to_csv(paths["table"], index=False)
    import pandas as pd

    pd.concat([h.assign(run=label) for label, h in comparison.histories.items()]).to_csv(
        paths["histories"], index=False)
    figure = hypervolume_figure(
        comparison.histories, f"{spec.study.name}: hypervolume against search energy, "
        f"by sampler", target=TARGET_FRACTION * comparison.reference_hypervolume)
    from ecotune.report import png_export_available

    png = False if args.no_png else png_export_available()
    paths.update(write_figure(figure, out, "compare", png))
    _print_paths(paths, console)
    return 0


def _print_comparison(comparison, console: Console) -> None:
    from rich.table import Table

    reference = ", ".join(f"{v:.4g}" for v in comparison.reference)
    table = Table(title=f"samplers compared (reference point {reference}; reference "
                        f"hypervolume {comparison.reference_hypervolume:.4g}, of the front "
                        "of all runs together)")
    for column in ("sampler", "runs", "trials", "search energy (J)", "final hypervolume",
                   "ratio to reference", "energy to 95 % (J)", "runs reaching 95 %"):
        table.add_column(column, justify="right")
    for _, row in comparison.table.iterrows():
        to_target = row["energy_to_target_j"]
        table.add_row(row["sampler"], str(row["runs"]), f"{row['trials']:.3g}",
                      f"{row['search_energy_j']:.4g}", f"{row['final_hypervolume']:.4g}",
                      f"{row['hypervolume_ratio']:.3f}",
                      "never" if to_target != to_target else f"{to_target:.4g}",
                      str(row["reached_target"]))
    console.print(table)
