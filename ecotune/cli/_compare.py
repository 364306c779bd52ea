"""``ecotune compare``: one search space under several samplers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ecotune.cli._common import (
    REPORT_ROOT,
    STORAGE_OVERRIDE_HELP,
    BadInput,
    Command,
    _choose_storage,
    _file_storage,
    _print_paths,
    _storage_failed,
)
from ecotune.spec import SAMPLERS, SpecError, StudySpec, load_spec

if TYPE_CHECKING:
    import optuna

    from ecotune.report.compare import Comparison


class CompareCommand(Command):
    name = "compare"
    help = "run one search space under several samplers and compare them"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study_file", metavar="STUDY.toml")
        parser.add_argument("--samplers", default="grid,random,tpe,gp,skopt",
                            help="comma-separated sampler names, some of "
                                 f"{', '.join(SAMPLERS)} (default: grid,random,tpe,gp,skopt)")
        parser.add_argument("--n-trials", type=int,
                            help="trials per run (required, except with --record; with "
                                 "--replay the default is the number of configurations in "
                                 "the table)")
        parser.add_argument("--repeats", type=int, default=1,
                            help="runs per sampler, seeds study.seed + 0, 1, ... "
                                 "(default: 1)")
        parser.add_argument("--record", type=Path, metavar="TABLE.csv",
                            help="train every point of the study's grid once, to its last "
                                 "epoch, into this table (resumes an interrupted recording)")
        parser.add_argument("--replay", type=Path, metavar="TABLE.csv",
                            help="run the samplers on this recorded table instead of "
                                 "training (in memory; nothing is stored)")
        parser.add_argument("--storage", help=STORAGE_OVERRIDE_HELP)
        parser.add_argument("--out", type=Path,
                            help="report directory (default: ecotune-report/NAME-compare)")
        parser.add_argument("--no-png", action="store_true", help="skip the PNG export")

    def take_action(self, args: argparse.Namespace) -> int:
        console = self.console
        if args.record is not None and args.replay is not None:
            raise BadInput("--record and --replay cannot be used together: record a table "
                           "first")
        if args.record is not None:
            from ecotune.cli._tabular import _record

            return _record(args, console)
        if args.replay is not None:
            from ecotune.cli._tabular import _replay

            return _replay(args, console)
        if args.n_trials is None:
            raise BadInput("--n-trials is required (except with --record or --replay)")
        samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
        spec, storage, source, runs = _runs(args, samplers)
        import optuna

        from ecotune.comparison import run_comparison
        from ecotune.report.compare import compare_studies
        from ecotune.storage import describe_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        _check_fresh(storage, runs)
        console.print(f"comparing {', '.join(samplers)}: {args.repeats} run(s) of "
                      f"{args.n_trials} trial(s) each, in {describe_storage(storage, source)}",
                      highlight=False)

        def done(sampler: str, repeat: int, study: optuna.Study) -> None:
            states = [t.state.name for t in study.trials]
            console.print(f"  {study.study_name}: {states.count('COMPLETE')} complete, "
                          f"{len(states) - states.count('COMPLETE')} other", highlight=False)

        comparison = compare_studies(run_comparison(runs, on_run=done))
        _print_comparison(comparison, console)
        _print_paths(_write_comparison(comparison, spec, args), console)
        return 0


def _runs(args: argparse.Namespace, samplers: list[str],
          ) -> tuple[StudySpec, str, str, list[tuple[str, int, StudySpec]]]:
    """The study file's spec on the chosen storage, the storage and where it came from,
    and the validated spec of every run."""
    from ecotune.comparison import comparison_runs

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
    return spec, storage, source, runs


def _check_fresh(storage: str, runs: list[tuple[str, int, StudySpec]]) -> None:
    """Refuse to run when a run's study exists already: compare runs fresh studies."""
    import optuna

    from ecotune.storage import redact_url

    try:
        existing = set(optuna.get_all_study_names(storage))  # summaries read every trial
    except Exception as err:
        raise _storage_failed(storage, err) from None
    taken = [s.study.name for _, _, s in runs if s.study.name in existing]
    if taken:
        raise BadInput(f"study {taken[0]!r} already exists in {redact_url(storage)}: compare "
                       "runs fresh studies; use another --storage or study name")


def _write_comparison(comparison: Comparison, spec: StudySpec,
                      args: argparse.Namespace) -> dict[str, Path]:
    """compare.csv, compare-hypervolume.csv and the hypervolume figure, by kind."""
    import pandas as pd

    from ecotune.report import png_export_available, safe_name
    from ecotune.report.compare import TARGET_FRACTION
    from ecotune.report.export import write_figure
    from ecotune.report.plots import hypervolume_figure

    out = args.out or REPORT_ROOT / safe_name(f"{spec.study.name}-compare")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "compare.csv", "histories": out / "compare-hypervolume.csv"}
    comparison.table.to_csv(paths["table"], index=False)
    pd.concat([h.assign(run=label) for label, h in comparison.histories.items()]).to_csv(
        paths["histories"], index=False)
    figure = hypervolume_figure(
        comparison.histories, f"{spec.study.name}: hypervolume against search energy, "
        f"by sampler", target=TARGET_FRACTION * comparison.reference_hypervolume)
    png = False if args.no_png else png_export_available()
    paths.update(write_figure(figure, out, "compare", png))
    return paths


def _print_comparison(comparison: Comparison, console: Console) -> None:
    from rich.table import Table

    reference = ", ".join(f"{v:.4g}" for v in comparison.reference)
    table = Table(title=f"samplers compared (reference point {reference}; reference "
                        f"hypervolume {comparison.reference_hypervolume:.4g}, of the front "
                        "of all runs together)")
    for column in ("sampler", "runs", "trials", "search energy (J)", "final hypervolume",
                   "ratio to reference", "final log HV diff", "energy to 95 % (J)",
                   "runs reaching 95 %", "J to 99 % (runs)", "J to 99.5 % (runs)"):
        table.add_column(column, justify="right")

    def energy(value: float) -> str:
        return "never" if value != value else f"{value:.4g}"

    for _, row in comparison.table.iterrows():
        table.add_row(row["sampler"], str(row["runs"]), f"{row['trials']:.3g}",
                      f"{row['search_energy_j']:.4g}", f"{row['final_hypervolume']:.4g}",
                      f"{row['hypervolume_ratio']:.3f}",
                      f"{row['final_log_hv_difference']:.2f}",
                      energy(row["energy_to_target_j"]), str(row["reached_target"]),
                      *[f"{energy(row[f'energy_to_{tag}_j'])} ({row[f'reached_{tag}']})"
                        for tag in ("99", "99.5")])
    console.print(table)
    from ecotune.cli._tabular import _print_ratios
    from ecotune.pareto import BASELINES

    _print_ratios(comparison.table, console,
                  [b for b in BASELINES if b in set(comparison.table["sampler"])], "sampler")
