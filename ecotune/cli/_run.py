"""``ecotune run``: run (or add trials to) the study a file describes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
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
    _print_front,
    _print_not_drawn,
    _print_paths,
    _storage_failed,
    print_error,
)
from ecotune.names import ATTR_FAIL_REASON, SAMPLERS
from ecotune.spec import SpecError, StudySpec, load_spec

if TYPE_CHECKING:
    import optuna

    from ecotune.rules import StudyEnergyBudget


class RunCommand(Command):
    name = "run"
    help = "run (or add trials to) the study a file describes"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("study_file", metavar="STUDY.toml")
        parser.add_argument("--n-trials", type=int, help="trials to add in this run")
        parser.add_argument("--sampler", metavar="NAME",
                            help=f"sampler, replacing the file's: one of {', '.join(SAMPLERS)}")
        parser.add_argument("--storage", help=STORAGE_OVERRIDE_HELP)
        parser.add_argument("--study-name", help="study name, replacing the file's")
        parser.add_argument("--out", type=Path,
                            help="report directory (default: ecotune-report/STUDY_NAME)")
        parser.add_argument("--no-report", action="store_true",
                            help="do not write the report")
        parser.add_argument("--workers", type=int, default=1,
                            help="worker processes on this machine, sharing the trials "
                                 "(default: 1)")
        parser.add_argument("--total-trials", type=int,
                            help="run until the study holds this many trials, counted over "
                                 "every worker on every machine (instead of adding "
                                 "--n-trials)")
        parser.add_argument("--device",
                            help="where to train: auto, cpu, cuda or cuda:N, replacing the "
                                 "file's [training] device (default there: auto, the first "
                                 "GPU if any)")
        parser.add_argument("--gpus", metavar="0,1,...",
                            help="give worker i the GPU gpus[i mod len(gpus)] (as its only "
                                 "visible GPU, CUDA_VISIBLE_DEVICES): indices of this "
                                 "process's GPUs or UUIDs")
        parser.add_argument("--seed", type=int, help="sampler seed, replacing the file's")
        parser.add_argument("--jobs", type=int, metavar="N",
                            help="trials each worker runs at once, in threads (replacing "
                                 "[study] n_jobs; each trial is charged its share of the "
                                 "energy read while it ran: docs/scaling.md)")

    def take_action(self, args: argparse.Namespace) -> int:
        console = self.console
        _check_counts(args)
        spec, source = _spec(args)
        gpus = _devices(spec, args)
        # A batch system's SIGTERM ends the run like Ctrl-C: the running trial is failed.
        import signal

        signal.signal(signal.SIGTERM, signal.default_int_handler)
        spec, study = _open_study(spec)
        from ecotune.execution import count_trials
        from ecotune.search import planned_trials

        before = count_trials(study)
        # Every worker counts toward one target: the run adds n_trials in total, not per
        # worker.
        target = args.total_trials or before + planned_trials(spec)
        n_trials = max(0, target - before)
        _print_plan(spec, source, args.workers, before, n_trials, console)
        try:
            budget = _run_trials(spec, study, target, n_trials, args, gpus, console)
        except KeyboardInterrupt:
            # Leave something to look at: the front of what finished, and how to report it.
            _print_interrupted(study, spec.study.storage, args, console)
            raise
        if budget is not None and budget.reached:
            console.print(f"[yellow]study energy budget reached:[/] {budget.spent_j(study):.4g}"
                          f" J spent of {budget.budget_j:.4g} J; no new trial started "
                          f"({len(study.trials) - before} of {n_trials} added)",
                          highlight=False, soft_wrap=True)
        _print_failures(study, before, console)
        if args.no_report:
            if _has_complete(study):
                _print_front(study, console)
            return 0
        return _report(study, args.out, console)


def _check_counts(args: argparse.Namespace) -> None:
    """Refuse counts that cannot be right, before the study file is read."""
    if args.n_trials is not None and args.n_trials <= 0:
        raise BadInput(f"--n-trials must be > 0 (got {args.n_trials})")
    if args.workers <= 0:
        raise BadInput(f"--workers must be >= 1 (got {args.workers})")
    if args.jobs is not None and args.jobs <= 0:
        raise BadInput(f"--jobs must be >= 1 (got {args.jobs})")
    if args.total_trials is not None and args.total_trials <= 0:
        raise BadInput(f"--total-trials must be > 0 (got {args.total_trials})")
    if args.total_trials is not None and args.n_trials is not None:
        raise BadInput("give --n-trials (trials to add) or --total-trials (trials the study "
                       "should hold), not both")


def _spec(args: argparse.Namespace) -> tuple[StudySpec, str]:
    """The study file's spec with the command line's settings (validated once: the file,
    then only what the command line changes), and where its storage came from."""
    try:
        spec = load_spec(args.study_file)
        storage, source = _choose_storage(args.storage, _file_storage(spec))
        spec = spec.with_overrides(storage=storage, n_trials=args.n_trials,
                                   sampler=args.sampler, study_name=args.study_name,
                                   seed=args.seed, n_jobs=args.jobs)
    except SpecError as err:
        raise BadInput(str(err)) from None
    if args.workers > 1 and ":memory:" in spec.study.storage:
        raise BadInput(f"--workers {args.workers} needs storage the processes share; "
                       f"{spec.study.storage} is private to one process")
    if args.device is not None:
        try:
            spec = spec.with_settings(training={"device": args.device})
        except SpecError as err:
            raise BadInput(str(err).replace("training.device", "--device")) from None
    return spec, source


def _devices(spec: StudySpec, args: argparse.Namespace) -> list[str]:
    """Check, before anything is stored, that this machine has the device and the
    ``--gpus`` asked for. Returns the workers' GPUs."""
    from ecotune.devices import DeviceError, check_gpus, parse_gpus, resolve_device, worker_gpu

    gpus: list[str] = []
    try:
        if args.gpus is not None:
            gpus = parse_gpus(args.gpus)
            check_gpus(gpus)
            # Worker 0 is this process: its GPU is set before torch starts CUDA here.
            os.environ["CUDA_VISIBLE_DEVICES"] = worker_gpu(gpus, 0)
        device = resolve_device(spec.training.device)
    except DeviceError as err:
        raise BadInput(str(err)) from None
    if spec.energy.meter == "nvml" and device.type == "cpu" and spec.energy.gpus == "used":
        raise BadInput('meter "nvml" measures the GPU a trial trains on, and these trials '
                       'train on the CPU: use meter "auto", a GPU device, or [energy] gpus = '
                       '"visible" to charge every visible GPU')
    return gpus


def _open_study(spec: StudySpec) -> tuple[StudySpec, optuna.Study]:
    """Create or load the study and store the spec in it (this process only: workers
    store nothing)."""
    import optuna

    from ecotune.search import StudyMismatchError, prepare

    # Failed trials are listed at the end with their reason; Optuna's own warning for each
    # (with a traceback) would bury the table, and Ctrl-C's one-line message.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return prepare(spec)
    except StudyMismatchError as err:
        raise BadInput(str(err)) from None
    except Exception as err:  # the storage could not be opened
        raise _storage_failed(spec.study.storage, err) from None


def _print_plan(spec: StudySpec, source: str, workers: int, before: int, n_trials: int,
                console: Console) -> None:
    from ecotune.storage import describe_storage

    n_jobs = spec.study.n_jobs
    jobs = f", {n_jobs} trials at once per worker" if n_jobs > 1 else ""
    console.print(f"study [bold]{spec.study.name}[/] in "
                  f"{describe_storage(spec.study.storage, source)}: "
                  f"{before} trial(s) stored, adding {n_trials} "
                  f"({spec.study.sampler.name} sampler, objectives "
                  f"{', '.join(spec.study.objectives)}"
                  f"{f', {workers} workers' if workers > 1 else ''}"
                  f"{jobs})",
                  highlight=False, soft_wrap=True)
    if workers > 1 and spec.study.storage.startswith("sqlite"):
        console.print(f"[yellow]note:[/] {workers} workers share one SQLite file: fine on "
                      "one machine for a few workers; use PostgreSQL for more "
                      "(docs/scaling.md)", highlight=False, soft_wrap=True)


def _run_trials(spec: StudySpec, study: optuna.Study, target: int, n_trials: int,
                args: argparse.Namespace, gpus: list[str], console: Console,
                ) -> StudyEnergyBudget | None:
    """This process's trials and those of ``--workers - 1`` more, with a progress bar
    counting every worker's trials."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ecotune.search import optimize, start_workers
    from ecotune.storage import TrialCursor

    # Into a file or pipe (`> log`), a line per trial replaces the bar, uncut.
    bar = console.is_terminal
    with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                  console=console, disable=not bar) as progress:
        task = progress.add_task("trials", total=n_trials, last="")

        # Other workers' trials count too: a cursor reads the trials finished since the
        # last trial from storage (not the whole study each time).
        finished = TrialCursor(study)
        finished.poll()  # those finished before this run
        done = 0

        def advance(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal done
            done += len(finished.poll())
            summary = _trial_summary(trial, spec.study.objectives)
            progress.update(task, completed=done, last=summary[:80])
            if not bar:
                console.print(f"{done}/{n_trials} {summary}", highlight=False, soft_wrap=True)

        with start_workers(spec, target, args.workers - 1, gpus):
            return optimize(spec, study, callbacks=[advance], target_trials=target)


def _report(study: optuna.Study, out: Path | None, console: Console) -> int:
    """Write the report into ``out`` (default: the study's folder in ecotune-report)."""
    from ecotune.report import NothingToReport, safe_name, write_report

    out = out or REPORT_ROOT / safe_name(study.study_name)
    try:
        paths = write_report(study, out)
    except NothingToReport as err:
        print_error(err)
        return 1
    except ValueError as err:  # e.g. objectives without energy: the run itself is kept
        _print_front(study, console)
        console.print(f"[yellow]no report:[/] {err}", highlight=False, soft_wrap=True)
        return 0
    _print_front(study, console)
    _print_not_drawn(paths, console)
    _print_paths(paths, console)
    return 0


def _has_complete(study: optuna.Study) -> bool:
    import optuna

    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _print_interrupted(study: optuna.Study, storage: str, args: argparse.Namespace,
                       console: Console) -> None:
    import shlex

    from ecotune.storage import redact_url

    if _has_complete(study):
        _print_front(study, console)
    # Never the password: the user puts it back (or sets ECOTUNE_STORAGE, docs/scaling.md).
    command = ["ecotune", "report", "--storage", redact_url(storage), "--study-name",
               study.study_name]
    if args.out is not None:
        command += ["--out", str(args.out)]
    console.print(f"interrupted; to write the report of the finished trials: "
                  f"{shlex.join(command)}", highlight=False, soft_wrap=True)


def _trial_summary(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> str:
    if trial.state.name != "COMPLETE":
        reason = trial.user_attrs.get(ATTR_FAIL_REASON, "")  # pruned trials have none
        return f"trial {trial.number} {trial.state.name.lower()} {reason}"
    values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, trial.values))
    return f"trial {trial.number}: {values}"


def _print_failures(study: optuna.Study, first: int, console: Console) -> None:
    for trial in study.trials[first:]:
        if trial.state.name == "FAIL":
            console.print(f"[yellow]trial {trial.number} failed:[/] "
                          f"{trial.user_attrs.get(ATTR_FAIL_REASON, 'unknown reason')}",
                          highlight=False, soft_wrap=True)
