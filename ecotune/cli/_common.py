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
    console.print(f"report: {', '.join(str(p) for p in unique)}", highlight=False)


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
