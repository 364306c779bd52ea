"""The ``ecotune`` command: ``run`` a study file, write its ``report``, open the
``dashboard``, ``compare`` samplers on one search space, list the energy ``meters``.

Exit status: 0 done; 2 bad input (study file, command line, storage, study name), with
one line naming the problem and nothing created or changed in storage; 130 interrupted
(Ctrl-C or SIGTERM: the running trial ends failed, no trial is left running); 1 anything
else.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ecotune import __version__
from ecotune.cli._common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput
from ecotune.cli._compare import _compare
from ecotune.cli._dashboard import _dashboard
from ecotune.cli._meters import _meters
from ecotune.cli._report import _report
from ecotune.cli._run import _run
from ecotune.spec import DEFAULT_STORAGE, SAMPLERS
from ecotune.storage import STORAGE_ENV

# One module per command. torch, optuna, plotly and pandas are imported inside the
# commands that need them, so that `--help` and a bad study file answer at once rather
# than after ~3 s of imports.

__all__ = ["main"]

# A password in a URL given here shows in `ps` and shell history: docs/scaling.md.
STORAGE_HELP = f"storage URL (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecotune", description="Hyperparameter search with energy as an objective.")
    parser.add_argument("--version", action="version", version=f"ecotune {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or add trials to) the study a file describes")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--n-trials", type=int, help="trials to add in this run")
    run.add_argument("--sampler", metavar="NAME",
                     help=f"sampler, replacing the file's: one of {', '.join(SAMPLERS)}")
    run.add_argument("--storage", help=f"storage URL, replacing the file's (else "
                                       f"${STORAGE_ENV}, else {DEFAULT_STORAGE})")
    run.add_argument("--study-name", help="study name, replacing the file's")
    run.add_argument("--out", type=Path,
                     help="report directory (default: ecotune-report/STUDY_NAME)")
    run.add_argument("--no-report", action="store_true", help="do not write the report")
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes on this machine, sharing the trials (default: 1)")
    run.add_argument("--total-trials", type=int,
                     help="run until the study holds this many trials, counted over every "
                          "worker on every machine (instead of adding --n-trials)")
    run.add_argument("--device",
                     help='where to train: auto, cpu, cuda or cuda:N, replacing the file\'s '
                          '[training] device (default there: auto, the first GPU if any)')
    run.add_argument("--gpus", metavar="0,1,...",
                     help="give worker i the GPU gpus[i mod len(gpus)] (as its only visible "
                          "GPU, CUDA_VISIBLE_DEVICES): indices of this process's GPUs or UUIDs")
    run.add_argument("--seed", type=int, help="sampler seed, replacing the file's")

    report = commands.add_parser("report", help="write a study's Pareto plot and front")
    report.add_argument("--storage", help=STORAGE_HELP)
    report.add_argument("--study-name", help="the study (default: the only one in storage)")
    report.add_argument("--out", type=Path,
                        help="report directory (default: ecotune-report/STUDY_NAME)")
    report.add_argument("--color-by", help="a parameter to colour the Pareto plot by")
    report.add_argument("--no-png", action="store_true", help="skip the PNG export")
    report.add_argument("--reference", metavar="V1,V2,...",
                        help="hypervolume reference point, one value per objective in the "
                             "study's order (default: the worst feasible value of each, "
                             "plus 10 %% of its range; accuracy 0)")

    meters = commands.add_parser(
        "meters", help="list the energy backends this machine has, with a sample reading")
    meters.add_argument("--seconds", type=float, default=0.5,
                        help="length of the busy sample window per backend (default: 0.5)")
    meters.add_argument("--country", default="USA",
                        help="ISO 3166-1 alpha-3 country code for the emissions figure")
    dashboard = commands.add_parser("dashboard", help="open optuna-dashboard on a storage")
    dashboard.add_argument("--storage", help=STORAGE_HELP)
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
                         help=f"comma-separated sampler names, some of {', '.join(SAMPLERS)} "
                              "(default: grid,random,tpe,gp,skopt)")
    compare.add_argument("--n-trials", type=int,
                         help="trials per run (required, except with --record; with --replay "
                              "the default is the number of configurations in the table)")
    compare.add_argument("--repeats", type=int, default=1,
                         help="runs per sampler, seeds study.seed + 0, 1, ... (default: 1)")
    compare.add_argument("--record", type=Path, metavar="TABLE.csv",
                         help="train every point of the study's grid once, to its last epoch, "
                              "into this table (resumes an interrupted recording)")
    compare.add_argument("--replay", type=Path, metavar="TABLE.csv",
                         help="run the samplers on this recorded table instead of training "
                              "(in memory; nothing is stored)")
    compare.add_argument("--storage", help=f"storage URL, replacing the file's (else "
                                           f"${STORAGE_ENV}, else {DEFAULT_STORAGE})")
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
