"""``ecotune run``: run (or add trials to) the study a file describes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from ecotune.cli._common import (
    REPORT_ROOT,
    BadInput,
    _choose_storage,
    _file_storage,
    _print_front,
    _print_not_drawn,
    _print_paths,
    _storage_failed,
)
from ecotune.names import ATTR_FAIL_REASON
from ecotune.spec import SpecError, StudySpec, load_spec

if TYPE_CHECKING:
    import optuna

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
    overrides = {"n_trials": args.n_trials, "sampler": args.sampler,
                 "study_name": args.study_name, "seed": args.seed}
    try:
        spec = load_spec(args.study_file)
        storage, source = _choose_storage(args.storage, _file_storage(spec))
        spec = spec.with_overrides(storage=storage, **overrides)
    except SpecError as err:
        raise BadInput(str(err)) from None
    if args.workers > 1 and ":memory:" in spec.study.storage:
        raise BadInput(f"--workers {args.workers} needs storage the processes share; "
                       f"{spec.study.storage} is private to one process")
    spec, gpus = _devices(spec, args)
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

    from ecotune.execution import count_trials
    from ecotune.report import safe_name, write_report
    from ecotune.search import StudyMismatchError, optimize, planned_trials, prepare, start_workers
    from ecotune.storage import TrialCursor, describe_storage

    # Failed trials are listed at the end with their reason; Optuna's own warning for each
    # (with a traceback) would bury the table, and Ctrl-C's one-line message.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        spec, study = prepare(spec)
    except StudyMismatchError as err:
        raise BadInput(str(err)) from None
    except Exception as err:  # the storage could not be opened
        raise _storage_failed(storage, err) from None

    before = count_trials(study)
    # Every worker counts toward one target: the run adds n_trials in total, not per worker.
    target = args.total_trials or before + planned_trials(spec)
    n_trials = max(0, target - before)
    console.print(f"study [bold]{spec.study.name}[/] in {describe_storage(storage, source)}: "
                  f"{before} trial(s) stored, adding {n_trials} "
                  f"({spec.study.sampler.name} sampler, objectives "
                  f"{', '.join(spec.study.objectives)}"
                  f"{f', {args.workers} workers' if args.workers > 1 else ''})",
                  highlight=False, soft_wrap=True)
    if args.workers > 1 and spec.study.storage.startswith("sqlite"):
        console.print(f"[yellow]note:[/] {args.workers} workers share one SQLite file: fine on "
                      "one machine for a few workers; use PostgreSQL for more "
                      "(docs/scaling.md)", highlight=False, soft_wrap=True)
    try:
        # Into a file or pipe (`> log`), a line per trial replaces the bar, uncut.
        bar = console.is_terminal
        with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                      console=console, disable=not bar) as progress:
            task = progress.add_task("trials", total=n_trials, last="")

            # Other workers' trials count too: a cursor reads the trials finished since
            # the last trial from storage (not the whole study each time).
            finished = TrialCursor(study)
            finished.poll()  # those finished before this run
            done = 0

            def advance(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                nonlocal done
                done += len(finished.poll())
                summary = _trial_summary(trial, spec.study.objectives)
                progress.update(task, completed=done, last=summary[:80])
                if not bar:
                    console.print(f"{done}/{n_trials} {summary}", highlight=False,
                                  soft_wrap=True)

            with start_workers(spec, target, args.workers - 1, gpus):
                budget = optimize(spec, study, callbacks=[advance], target_trials=target)
    except KeyboardInterrupt:
        # Leave something to look at: the front of what finished, and how to report it.
        _print_interrupted(study, spec.study.storage, args, console)
        raise
    if budget is not None and budget.reached:
        console.print(f"[yellow]study energy budget reached:[/] {budget.spent_j(study):.4g} J "
                      f"spent of {budget.budget_j:.4g} J; no new trial started "
                      f"({len(study.trials) - before} of {n_trials} added)", highlight=False,
                      soft_wrap=True)
    _print_failures(study, before, console)
    if args.no_report:
        if _has_complete(study):
            _print_front(study, console)
        return 0
    from ecotune.report import NothingToReport

    out = args.out or REPORT_ROOT / safe_name(spec.study.name)
    try:
        paths = write_report(study, out)
    except NothingToReport as err:
        Console(stderr=True).print(f"[bold red]ecotune: error:[/] {err}", highlight=False,
                                   soft_wrap=True)
        return 1
    except ValueError as err:  # e.g. objectives without energy: the run itself is kept
        _print_front(study, console)
        console.print(f"[yellow]no report:[/] {err}", highlight=False, soft_wrap=True)
        return 0
    _print_front(study, console)
    _print_not_drawn(paths, console)
    _print_paths(paths, console)
    return 0


def _devices(spec: StudySpec, args: argparse.Namespace) -> tuple[StudySpec, list[str]]:
    """Apply ``--device`` and ``--gpus`` and check, before anything is stored, that this
    machine has the device and GPUs asked for. Returns the spec and the workers' GPUs."""
    from ecotune.devices import DeviceError, check_gpus, parse_gpus, resolve_device, worker_gpu

    if args.device is not None:
        raw = spec.model_dump()
        raw["training"]["device"] = args.device
        try:
            spec = load_spec(raw)
        except SpecError as err:
            raise BadInput(str(err).replace("training.device", "--device")) from None
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
    return spec, gpus


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
