"""What the commands share: the bad-input error, exit codes, storage checks, printing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    import optuna

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
REPORT_ROOT = Path("ecotune-report")


class BadInput(Exception):
    """Input the user must fix; reported in one line with exit status 2."""


def _one_line(err: Exception) -> str:
    """The first line of an error (SQLAlchemy appends a second one with a web link)."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"


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
    from rich.table import Table

    from ecotune.report import pareto_front
    from ecotune.report.checks import objective_names
    from ecotune.report.plots import energy_label

    front = pareto_front(study)
    names = objective_names(study)  # objective_0, ... for a study without metric names
    table = Table(title=f"Pareto front of {study.study_name} ({len(front)} trial(s); "
                        f"energy: {energy_label(front)})")
    params = [c for c in front.columns if c.startswith("params_")]
    extra = [c for c in ("test_accuracy",) if c in front.columns]
    columns = ["trial", *[n for n in names if n in front.columns], *params, *extra]
    for column in columns:
        table.add_column(column.removeprefix("params_"), justify="right")
    for _, row in front.iterrows():
        table.add_row(*(_cell(row[c]) for c in columns))
    _print_unclipped(table, console)


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
