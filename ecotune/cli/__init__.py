"""The ``ecotune`` command: ``run`` a study file, write its ``report``, open the
``dashboard``, ``compare`` samplers on one search space, list the energy ``meters``,
``confirm`` a front by repeating its trials.

Exit status: 0 done; 2 bad input (study file, command line, storage, study name), with
one line naming the problem and nothing created or changed in storage; 130 interrupted
(Ctrl-C or SIGTERM: the running trial ends failed, no trial is left running); 1 anything
else.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from rich.console import Console

from ecotune import __version__
from ecotune.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    BadInput,
    Command,
    print_error,
)
from ecotune.cli._compare import CompareCommand
from ecotune.cli._confirm import ConfirmCommand
from ecotune.cli._dashboard import DashboardCommand
from ecotune.cli._meters import MetersCommand
from ecotune.cli._report import ReportCommand
from ecotune.cli._run import RunCommand

# One module per command, holding its arguments and its handler (cli._common.Command).

__all__ = ["main"]

#: The commands, in the order ``ecotune --help`` lists them.
COMMANDS: tuple[type[Command], ...] = (RunCommand, ReportCommand, ConfirmCommand,
                                       MetersCommand, DashboardCommand, CompareCommand)


def _parser(commands: Iterable[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecotune", description="Hyperparameter search with energy as an objective.")
    parser.add_argument("--version", action="version", version=f"ecotune {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        command.add_arguments(subparsers.add_parser(command.name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    commands = {command.name: command(console) for command in COMMANDS}
    args = _parser(commands.values()).parse_args(argv)  # exits with status 2 if bad
    command = commands[args.command]
    try:
        return command.take_action(args)
    except BadInput as err:
        print_error(err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        Console(stderr=True).print(f"ecotune: {command.interrupted}", highlight=False,
                                   soft_wrap=True)
        return EXIT_INTERRUPTED
