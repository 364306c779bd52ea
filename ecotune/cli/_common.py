"""What the commands share: the bad-input error, exit codes, storage checks, printing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from ecotune.spec import DEFAULT_STORAGE
from ecotune.storage import STORAGE_ENV

if TYPE_CHECKING:
    import optuna

    from ecotune.spec import StudySpec

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
REPORT_ROOT = Path("ecotune-report")

# A password in a URL given here shows in `ps` and shell history: docs/scaling.md.
STORAGE_HELP = f"storage URL (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})"
#: ``--storage`` of the commands that run a study file, which may name a storage itself.
STORAGE_OVERRIDE_HELP = (f"storage URL, replacing the file's (else ${STORAGE_ENV}, else "
                         f"{DEFAULT_STORAGE})")


def print_error(err: object) -> None:
    """One line on stderr: ``ecotune: error: <err>``. The message is escaped, so text such
    as ``[energy]`` (a study-file section) prints as written, not as rich markup."""
    Console(stderr=True).print(f"[bold red]ecotune: error:[/] {escape(str(err))}",
                               highlight=False, soft_wrap=True)


class BadInput(Exception):
    """Input the user must fix; reported in one line with exit status 2."""


class Command:
    """One ``ecotune`` command in Optuna's ``_BaseCommand`` shape: the arguments it takes
    (:meth:`add_arguments`) and what it does with them (:meth:`take_action`, which returns
    the exit status and raises :class:`BadInput` for input the user must fix).

    torch, optuna, plotly and pandas are imported inside ``take_action`` where needed, so
    that ``--help`` and a bad study file answer at once rather than after ~3 s of imports.
    """

    #: The command's name and its line in ``ecotune --help``.
    name = ""
    help = ""
    #: What Ctrl-C (or SIGTERM) left behind, said in one line after ``ecotune: ``.
    interrupted = ("interrupted; the running trial (if any) ended as failed, finished "
                   "trials are kept")

    def __init__(self, console: Console) -> None:
        self.console = console

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def _one_line(err: Exception) -> str:
    """The first line of an error (SQLAlchemy appends a second one with a web link)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"


def _choose_storage(flag: str | None, from_file: str | None = None,
                    must_exist: bool = False) -> tuple[str, str]:
    """The storage URL a command uses (``--storage``, the study file's, ``ECOTUNE_STORAGE``,
    the default) and where it came from, refused at once if it cannot work.

    Args:
        must_exist: the command only reads: a missing SQLite or journal file is an error,
            since opening it would create it.
    """
    from ecotune.spec import DEFAULT_STORAGE
    from ecotune.storage import (
        STORAGE_ENV,
        StorageURLError,
        check_storage_url,
        choose_storage,
    )

    url, source = choose_storage(flag, from_file, DEFAULT_STORAGE)
    try:
        check_storage_url(url, must_exist,
                          label=source if source in ("--storage", STORAGE_ENV) else "storage")
    except StorageURLError as err:
        raise BadInput(str(err)) from None
    return url, source


def _file_storage(spec: StudySpec) -> str | None:
    """The storage the study file names, or None when it leaves it to the default."""
    return spec.study.storage if "storage" in spec.study.model_fields_set else None


def _storage_failed(storage: str, err: Exception) -> BadInput:
    """The one-line error for a storage that could not be opened, its password hidden
    (ecotune's own message quotes the URL; a driver's might quote the password)."""
    from ecotune.storage import redact_url, scrub

    return BadInput(f"storage {redact_url(storage)}: {scrub(_one_line(err), storage)}")


def _print_paths(paths: dict[str, Path], console: Console) -> None:
    unique = sorted(set(paths.values()))
    first = paths.get("index")
    if first is None:
        console.print(f"report: {', '.join(str(p) for p in unique)}", highlight=False,
                      soft_wrap=True)
        return
    console.print(f"report: {first} (every plot and the front on one page; "
                  f"{len(unique)} files in {first.parent})", highlight=False, soft_wrap=True)


def _print_not_drawn(paths: dict[str, Path], console: Console) -> None:
    """One line naming the plots a report left out, and why."""
    from ecotune.report import plots_not_drawn

    drawn = {kind.removesuffix("_html") for kind in paths if kind.endswith("_html")}
    missing = plots_not_drawn(drawn)
    if missing:
        console.print("not drawn: " + "; ".join(f"{name.replace('_', ' ')} ({reason})"
                                                for name, reason in missing.items()),
                      highlight=False, soft_wrap=True)


def _print_front(study: optuna.Study, console: Console) -> None:
    import numpy as np
    from rich.table import Table

    from ecotune.pareto import objective_names
    from ecotune.report import pareto_front
    from ecotune.report.noise import confirmed_count, interval_cell
    from ecotune.report.plots import energy_label

    front = pareto_front(study)
    names = objective_names(study)  # objective_0, ... for a study without metric names
    noise = ""
    intervals = [n for n in names if f"{n}_ci_low" in front.columns]
    if "measurements" in front.columns:
        confirmed, overlapping = confirmed_count(front)
        noise = (f"front: {confirmed} of {len(front)} point(s) confirmed by repeats (on "
                 f"the front of the means, interval clear of the others); {overlapping} "
                 "with overlapping intervals (*: the meter cannot order them)")
    table = Table(title=f"Pareto front of {study.study_name} ({len(front)} trial(s); "
                        f"energy: {energy_label(front)})")
    params = [c for c in front.columns if c.startswith("params_")]
    extra = [c for c in ("test_accuracy",) if c in front.columns]
    columns = ["trial", *[n for n in names if n in front.columns], *params, *extra]
    for column in columns:
        table.add_column(column.removeprefix("params_"), justify="right")
    for name in intervals:
        table.add_column(f"{name} mean [95 % interval]", justify="right")
    # A long noisy study's front can hold hundreds of trials: an even sample of rows
    # (the report's front.csv holds them all).
    shown = front.iloc[np.unique(np.linspace(0, len(front) - 1, MAX_FRONT_ROWS).round()
                                 .astype(int))] if len(front) > MAX_FRONT_ROWS else front
    if len(shown) < len(front):
        table.caption = (f"{len(shown)} of {len(front)} front trials shown, evenly "
                         "spaced; the whole front: front.csv of `ecotune report`")
    for _, row in shown.iterrows():
        table.add_row(*(_cell(row[c]) for c in columns),
                      *(interval_cell(row, name) for name in intervals))
    _print_unclipped(table, console)
    if noise:
        console.print(noise, highlight=False, soft_wrap=True)


#: Rows of the front the terminal table shows at most.
MAX_FRONT_ROWS = 40


def _print_unclipped(renderable: object, console: Console) -> None:
    """Print at the terminal's width; into a file or pipe (``> log``) at the width the
    renderable needs, so that no column or value is cut."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    measuring = Console(file=console.file, width=100_000, force_terminal=False)
    needed = Measurement.get(measuring, measuring.options, renderable).maximum
    Console(file=console.file, width=max(needed, console.width),
            force_terminal=False).print(renderable)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
