"""``ecotune compare --record`` and ``--replay``: recorded (tabular) benchmarks."""

from __future__ import annotations

import argparse
import shlex
import sys

from rich.console import Console

from ecotune.cli._common import BadInput
from ecotune.spec import SpecError, load_spec


def _command_line() -> str:
    return shlex.join(["ecotune", *sys.argv[1:]])


def _record(args: argparse.Namespace, console: Console) -> int:
    import optuna

    from ecotune.tabular import TableError, grid_configs, record_table

    try:
        spec = load_spec(args.study_file)
        planned = len(grid_configs(spec))
    except (SpecError, TableError) as err:
        raise BadInput(str(err)) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console.print(f"recording {planned} configuration(s) of {spec.study.name} into "
                  f"{args.record}", highlight=False)

    def done(trial: optuna.trial.FrozenTrial, n: int, total: int) -> None:
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        energy = trial.user_attrs.get("energy_j")
        console.print(f"  {n}/{total} {trial.state.name.lower()}: {params}; "
                      f"{energy if energy is None else f'{energy:.3g} J'}", highlight=False)

    try:
        session = record_table(spec, args.record, command=_command_line(), on_trial=done)
    except TableError as err:
        raise BadInput(str(err)) from None
    console.print(f"{args.record}: {session.already + len(session.trials)} of "
                  f"{session.planned} configurations recorded ({len(session.trials)} in this "
                  f"session, {session.wall_s:.1f} s)", highlight=False)
    return 0


def _replay(args: argparse.Namespace, console: Console) -> int:
    raise BadInput("--replay: not implemented yet")
