"""``ecotune report``: write a stored study's plots and front."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ecotune.cli._common import (
    REPORT_ROOT,
    STORAGE_HELP,
    BadInput,
    Command,
    _choose_storage,
    _print_front,
    _print_not_drawn,
    _print_paths,
    _storage_failed,
    print_error,
)

if TYPE_CHECKING:
    import optuna


class ReportCommand(Command):
    name = "report"
    help = "write a study's Pareto plot and front"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", help=STORAGE_HELP)
        parser.add_argument("--study-name",
                            help="the study (default: the only one in storage)")
        parser.add_argument("--out", type=Path,
                            help="report directory (default: ecotune-report/STUDY_NAME)")
        parser.add_argument("--color-by", help="a parameter to colour the Pareto plot by")
        parser.add_argument("--no-png", action="store_true", help="skip the PNG export")
        parser.add_argument("--reference", metavar="V1,V2,...",
                            help="hypervolume reference point, one value per objective in "
                                 "the study's order (default: the worst feasible value of "
                                 "each, plus 10 %% of its range; accuracy 0)")

    def take_action(self, args: argparse.Namespace) -> int:
        from ecotune.report import NothingToReport, safe_name, write_report
        from ecotune.storage import collector_paused

        study = _load_study(args, self.console)
        reference = _reference(args.reference, study)
        out = args.out or REPORT_ROOT / safe_name(study.study_name)
        try:
            with collector_paused():
                paths = write_report(study, out, png=False if args.no_png else None,
                                     color_by=args.color_by, reference=reference)
        except NothingToReport as err:  # a study with nothing to show: an error, not bad input
            print_error(err)
            return 1
        except ValueError as err:
            raise BadInput(str(err)) from None
        _print_front(study, self.console)
        _print_not_drawn(paths, self.console)
        _print_paths(paths, self.console)
        return 0


def _load_study(args: argparse.Namespace, console: Console) -> optuna.Study:
    """The study ``--storage`` and ``--study-name`` name (the storage's only one by
    default), read through a view that hides passwords."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, source = _choose_storage(args.storage, must_exist=True)
    from ecotune.storage import (
        STORAGE_ENV,
        RedactedStorage,
        describe_storage,
        open_storage,
        redact_url,
    )

    shown = redact_url(storage)
    try:
        # Read through the redacting view: an older study may hold a password in its spec.
        # Optuna's trial cache goes inside it (load_study adds it only to a bare
        # RDBStorage): a report reads the trials several times.
        storage_obj = RedactedStorage(optuna.storages.get_storage(open_storage(storage)))
        # Names only: study summaries would read every trial of every study.
        names = optuna.get_all_study_names(storage_obj)
    except Exception as err:
        raise _storage_failed(storage, err) from None
    if os.environ.get(STORAGE_ENV):  # then say whether it was used
        console.print(f"storage: {describe_storage(storage, source)}", highlight=False)
    name = args.study_name
    if name is None:
        if len(names) != 1:
            raise BadInput(f"storage {shown} holds {len(names)} studies {names}: "
                           "choose one with --study-name")
        name = names[0]
    elif name not in names:
        raise BadInput(f"no study {name!r} in {shown}; it holds {names}")
    return optuna.load_study(study_name=name, storage=storage_obj)


def _reference(text: str | None, study) -> list[float] | None:
    """``--reference 0,12.5``: one finite number per objective of ``study``."""
    if text is None:
        return None
    from ecotune.pareto import objective_names

    names = objective_names(study)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadInput(f"--reference {text!r}: expected numbers separated by commas, one per "
                       f"objective ({', '.join(names)})") from None
    if len(values) != len(names) or not all(math.isfinite(v) for v in values):
        raise BadInput(f"--reference {text!r}: expected {len(names)} finite numbers, one per "
                       f"objective ({', '.join(names)})")
    return values


