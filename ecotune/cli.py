"""The ``ecotune`` command: ``run`` a study file, write its ``report``, open the
``dashboard``, ``compare`` samplers on one search space, list the energy ``meters``.

Exit status: 0 done; 2 bad input (study file, command line, storage, study name), with
one line naming the problem and nothing created or changed in storage; 130 interrupted
(Ctrl-C or SIGTERM: the running trial ends failed, no trial is left running); 1 anything
else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ecotune import __version__
from ecotune.spec import DEFAULT_STORAGE, SpecError, load_spec

if TYPE_CHECKING:
    import optuna

# torch, optuna, plotly and pandas are imported inside the commands that need them, so
# that `--help` and a bad study file answer at once rather than after ~3 s of imports.

__all__ = ["main"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
REPORT_ROOT = Path("ecotune-report")


class BadInput(Exception):
    """Input the user must fix; reported in one line with exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecotune", description="Hyperparameter search with energy as an objective.")
    parser.add_argument("--version", action="version", version=f"ecotune {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or add trials to) the study a file describes")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--n-trials", type=int, help="trials to add in this run")
    run.add_argument("--sampler", help="sampler name, replacing the file's")
    run.add_argument("--storage", help="storage URL, replacing the file's")
    run.add_argument("--study-name", help="study name, replacing the file's")
    run.add_argument("--out", type=Path,
                     help="report directory (default: ecotune-report/STUDY_NAME)")
    run.add_argument("--no-report", action="store_true", help="do not write the report")
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes on this machine, sharing the trials (default: 1)")
    run.add_argument("--total-trials", type=int,
                     help="run until the study holds this many trials, counted over every "
                          "worker on every machine (instead of adding --n-trials)")
    run.add_argument("--seed", type=int, help="sampler seed, replacing the file's")

    report = commands.add_parser("report", help="write a study's Pareto plot and front")
    report.add_argument("--storage", default=DEFAULT_STORAGE,
                        help=f"storage URL (default: {DEFAULT_STORAGE})")
    report.add_argument("--study-name", help="the study (default: the only one in storage)")
    report.add_argument("--out", type=Path,
                        help="report directory (default: ecotune-report/STUDY_NAME)")
    report.add_argument("--color-by", help="a parameter to colour the Pareto plot by")
    report.add_argument("--no-png", action="store_true", help="skip the PNG export")

    meters = commands.add_parser(
        "meters", help="list the energy backends this machine has, with a sample reading")
    meters.add_argument("--seconds", type=float, default=0.5,
                        help="length of the busy sample window per backend (default: 0.5)")
    meters.add_argument("--country", default="USA",
                        help="ISO 3166-1 alpha-3 country code for the emissions figure")
    dashboard = commands.add_parser("dashboard", help="open optuna-dashboard on a storage")
    dashboard.add_argument("--storage", default=DEFAULT_STORAGE,
                           help=f"storage URL (default: {DEFAULT_STORAGE})")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default: 127.0.0.1, this machine only)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    dashboard.add_argument("--artifact-dir", type=Path, default=Path("ecotune-artifacts"),
                           help="directory of the dashboard's artifact store "
                                "(default: ecotune-artifacts)")

    compare = commands.add_parser(
        "compare", help="run one search space under several samplers and compare them")
    compare.add_argument("study_file", metavar="STUDY.toml")
    compare.add_argument("--samplers", default="grid,random,tpe,gp,skopt",
                         help="comma-separated sampler names (default: grid,random,tpe,gp,skopt)")
    compare.add_argument("--n-trials", type=int, required=True, help="trials per run")
    compare.add_argument("--repeats", type=int, default=1,
                         help="runs per sampler, seeds study.seed + 0, 1, ... (default: 1)")
    compare.add_argument("--storage", help="storage URL, replacing the file's")
    compare.add_argument("--out", type=Path,
                         help="report directory (default: ecotune-report/NAME-compare)")
    compare.add_argument("--no-png", action="store_true", help="skip the PNG export")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits with status 2 on a bad command line
    console = Console()
    try:
        if args.command == "run":
            return _run(args, console)
        if args.command == "meters":
            return _meters(args, console)
        if args.command == "dashboard":
            return _dashboard(args, console)
        if args.command == "compare":
            return _compare(args, console)
        return _report(args, console)
    except BadInput as err:
        Console(stderr=True).print(f"[bold red]ecotune: error:[/] {err}", highlight=False,
                                   soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        Console(stderr=True).print("ecotune: interrupted; the running trial (if any) ended as "
                                   "failed, finished trials are kept", highlight=False,
                                   soft_wrap=True)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.n_trials is not None and args.n_trials <= 0:
        raise BadInput(f"--n-trials must be > 0 (got {args.n_trials})")
    if args.workers <= 0:
        raise BadInput(f"--workers must be >= 1 (got {args.workers})")
    if args.total_trials is not None and args.total_trials <= 0:
        raise BadInput(f"--total-trials must be > 0 (got {args.total_trials})")
    if args.total_trials is not None and args.n_trials is not None:
        raise BadInput("give --n-trials (trials to add) or --total-trials (trials the study "
                       "should hold), not both")
    overrides = {"n_trials": args.n_trials, "sampler": args.sampler, "storage": args.storage,
                 "study_name": args.study_name, "seed": args.seed}
    try:
        spec = load_spec(args.study_file).with_overrides(**overrides)
    except SpecError as err:
        raise BadInput(str(err)) from None
    if args.workers > 1 and ":memory:" in spec.study.storage:
        raise BadInput(f"--workers {args.workers} needs storage the processes share; "
                       f"{spec.study.storage} is private to one process")
    # A batch system's SIGTERM ends the run like Ctrl-C: the running trial is failed.
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)

    import optuna
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ecotune.report import safe_name, write_report
    from ecotune.search import StudyMismatchError, planned_trials, prepare
    from ecotune.search.runner import optimize
    from ecotune.search.workers import count_trials, start_local_workers

    # Failed trials are listed at the end with their reason; Optuna's own warning for each
    # (with a traceback) would bury the table, and Ctrl-C's one-line message.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        spec, study = prepare(spec)
    except StudyMismatchError as err:
        raise BadInput(str(err)) from None
    except Exception as err:  # the storage could not be opened
        raise BadInput(f"storage {overrides['storage'] or 'from the study file'}: "
                       f"{_one_line(err)}") from None

    before = count_trials(study)
    # Every worker counts toward one target: the run adds n_trials in total, not per worker.
    target = args.total_trials or before + planned_trials(spec)
    n_trials = max(0, target - before)
    console.print(f"study [bold]{spec.study.name}[/] in {spec.study.storage}: "
                  f"{before} trial(s) stored, adding {n_trials} "
                  f"({spec.study.sampler.name} sampler, objectives "
                  f"{', '.join(spec.study.objectives)}"
                  f"{f', {args.workers} workers' if args.workers > 1 else ''})",
                  highlight=False)
    if args.workers > 1 and spec.study.storage.startswith("sqlite"):
        console.print(f"[yellow]note:[/] {args.workers} workers share one SQLite file: fine on "
                      "one machine for a few workers; use PostgreSQL for more "
                      "(docs/scaling.md)", highlight=False)
    with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                  console=console) as progress:
        task = progress.add_task("trials", total=n_trials, last="")

        def advance(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            # Other workers' trials count too: read the number finished from storage.
            done = len(study.get_trials(deepcopy=False, states=finished)) - finished_before
            progress.update(task, completed=done,
                            last=_trial_summary(trial, spec.study.objectives))

        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                     optuna.trial.TrialState.PRUNED)
        finished_before = len(study.get_trials(deepcopy=False, states=finished))
        with start_local_workers(spec, target, args.workers - 1):
            budget = optimize(spec, study, callbacks=[advance], target_trials=target)
    if budget is not None and budget.reached:
        console.print(f"[yellow]study energy budget reached:[/] {budget.spent_j(study):.4g} J "
                      f"spent of {budget.budget_j:.4g} J; no new trial started "
                      f"({len(study.trials) - before} of {n_trials} added)", highlight=False)
    _print_failures(study, before, console)
    _print_front(study, console)
    if not args.no_report:
        out = args.out or REPORT_ROOT / safe_name(spec.study.name)
        paths = write_report(study, out)
        _print_paths(paths, console)
    return 0


def _print_paths(paths: dict[str, Path], console: Console) -> None:
    unique = sorted(set(paths.values()))
    console.print(f"report: {', '.join(str(p) for p in unique)}", highlight=False)


def _one_line(err: Exception) -> str:
    """The first line of an error (SQLAlchemy appends a second one with a web link)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"


def _trial_summary(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> str:
    if trial.state.name != "COMPLETE":
        reason = trial.user_attrs.get("fail_reason", "")  # pruned trials have none
        return f"trial {trial.number} {trial.state.name.lower()} {reason}"[:80]
    values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, trial.values))
    return f"trial {trial.number}: {values}"


def _print_failures(study: optuna.Study, first: int, console: Console) -> None:
    for trial in study.trials[first:]:
        if trial.state.name == "FAIL":
            console.print(f"[yellow]trial {trial.number} failed:[/] "
                          f"{trial.user_attrs.get('fail_reason', 'unknown reason')}",
                          highlight=False)


def _print_front(study: optuna.Study, console: Console) -> None:
    from rich.table import Table

    from ecotune.report import pareto_front
    from ecotune.report.plots import energy_label

    front = pareto_front(study)
    names = study.metric_names or []
    table = Table(title=f"Pareto front of {study.study_name} ({len(front)} trial(s); "
                        f"energy: {energy_label(front)})")
    params = [c for c in front.columns if c.startswith("params_")]
    extra = [c for c in ("test_accuracy",) if c in front.columns]
    for column in ["trial", *names, *params, *extra]:
        table.add_column(column.removeprefix("params_"), justify="right")
    for _, row in front.iterrows():
        table.add_row(*(_cell(row[c]) for c in ["trial", *names, *params, *extra]))
    console.print(table)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _report(args: argparse.Namespace, console: Console) -> int:
    import optuna

    from ecotune.report import safe_name, write_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = args.storage
    _check_storage_exists(storage)
    from ecotune.search.storage import open_storage

    try:
        storage_obj = open_storage(storage)
        summaries = optuna.get_all_study_summaries(storage_obj)
    except Exception as err:
        raise BadInput(f"storage {storage}: {_one_line(err)}") from None
    names = [s.study_name for s in summaries]
    name = args.study_name
    if name is None:
        if len(names) != 1:
            raise BadInput(f"storage {storage} holds {len(names)} studies {names}: "
                           "choose one with --study-name")
        name = names[0]
    elif name not in names:
        raise BadInput(f"no study {name!r} in {storage}; it holds {names}")
    study = optuna.load_study(study_name=name, storage=storage_obj)
    out = args.out or REPORT_ROOT / safe_name(name)
    try:
        paths = write_report(study, out, png=False if args.no_png else None,
                             color_by=args.color_by)
    except ValueError as err:
        raise BadInput(str(err)) from None
    _print_front(study, console)
    _print_paths(paths, console)
    return 0


def _meters(args: argparse.Namespace, console: Console) -> int:
    import time

    from rich.table import Table

    from ecotune.energy import MEASURES, METERS, MeterError, get_meter, meter_status
    from ecotune.energy.carbon import carbon_intensity_g_per_kwh

    if args.seconds <= 0:
        raise BadInput(f"--seconds must be > 0 (got {args.seconds})")
    try:
        carbon_intensity_g_per_kwh(args.country)
    except ValueError as err:
        raise BadInput(str(err)) from None

    def busy_window(name: str) -> str:
        """A short busy loop measured by backend ``name``, as one line of figures."""
        meter = get_meter(name, args.country)
        with meter.window() as window:
            end_s = time.perf_counter() + args.seconds
            while time.perf_counter() < end_s:
                sum(i * i for i in range(1000))
        m = window.measurement
        devices = ", ".join(f"{d} {j:.3g} J" for d, j in
                            (("cpu", m.cpu_j), ("gpu", m.gpu_j), ("ram", m.ram_j))
                            if j is not None)
        label = "estimate" if m.is_estimate else "measured"
        others = "".join(f"; {n} read {j:.3g} J" for n, j in m.alternatives.items())
        return (f"{m.energy_j:.3g} J in {m.duration_s:.2f} s ({m.energy_j / m.duration_s:.3g} W"
                f"; {devices}); {label}, scope {m.scope}{others}")

    table = Table(title=f"energy backends on this machine ({args.seconds:g} s busy sample)")
    for column in ("backend", "available", "measures", "sample reading / why not"):
        table.add_column(column)
    for name in METERS:
        status = meter_status(name)
        if status.available:
            try:
                sample = busy_window(name)
            except MeterError as err:
                sample = f"[red]failed:[/] {err}"
        else:
            sample = status.reason
        table.add_row(name, "yes" if status.available else "[yellow]no[/]", MEASURES[name],
                      sample)
    console.print(table)
    auto = get_meter("auto", args.country)
    sources = getattr(auto, "chosen", None)
    choice = (", ".join(f"{device} from {meter.name}" for device, meter in sources.items())
              if sources else f"everything from {auto.name}")
    console.print(f"auto: {choice}; sample: {busy_window('auto')}", highlight=False)
    return 0


def _check_storage_exists(storage: str) -> None:
    """Refuse a missing SQLite or journal file: opening one would create it."""
    from ecotune.search.storage import journal_path

    log = journal_path(storage)
    if log is not None and not log.is_file():
        raise BadInput(f"storage {storage}: no such journal file {log}")
    _check_sqlite_file(storage)


def _check_sqlite_file(storage: str) -> None:
    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
        # Opening a missing SQLite file would create it: refuse instead.
        path = Path(storage.removeprefix("sqlite:///"))
        if not path.is_file():
            raise BadInput(f"storage {storage}: no such database file {path}")


def _dashboard(args: argparse.Namespace, console: Console) -> int:
    if not 0 < args.port < 65536:
        raise BadInput(f"--port must be between 1 and 65535 (got {args.port})")
    _check_storage_exists(args.storage)
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from ecotune.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(args.storage)
    except Exception as err:
        raise BadInput(f"storage {args.storage}: {_one_line(err)}") from None
    args.artifact_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"optuna-dashboard on {args.storage}: http://{args.host}:{args.port}/dashboard "
                  f"(artifacts in {args.artifact_dir}; Ctrl-C stops it)", highlight=False)
    try:
        run_server(storage, host=args.host, port=args.port,
                   artifact_store=FileSystemArtifactStore(str(args.artifact_dir)))
    except OSError as err:  # the port is taken, or the host is not an address of this machine
        raise BadInput(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    except KeyboardInterrupt:
        pass
    return 0


def _compare(args: argparse.Namespace, console: Console) -> int:
    from ecotune.search.compare import comparison_runs

    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    try:
        spec = load_spec(args.study_file).with_overrides(storage=args.storage)
        runs = comparison_runs(spec, samplers, args.n_trials, args.repeats)
    except SpecError as err:
        raise BadInput(f"{err} (leave it out of --samplers, or give the float "
                       "parameters a grid)" if "grid" in str(err) else str(err)) from None
    except ValueError as err:
        raise BadInput(str(err)) from None

    import optuna

    from ecotune.report import safe_name
    from ecotune.report.compare import TARGET_FRACTION, compare_studies
    from ecotune.report.export import write_figure
    from ecotune.report.plots import hypervolume_figure
    from ecotune.search.compare import run_comparison

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = spec.study.storage
    try:
        existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    except Exception as err:
        raise BadInput(f"storage {storage}: {_one_line(err)}") from None
    taken = [s.study.name for _, _, s in runs if s.study.name in existing]
    if taken:
        raise BadInput(f"study {taken[0]!r} already exists in {storage}: compare runs fresh "
                       "studies; use another --storage or study name")
    console.print(f"comparing {', '.join(samplers)}: {args.repeats} run(s) of "
                  f"{args.n_trials} trial(s) each, in {storage}", highlight=False)

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


if __name__ == "__main__":
    sys.exit(main())
