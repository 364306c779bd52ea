"""``ecotune report``: write a stored study's plots and front."""

from __future__ import annotations

import argparse
import os

from rich.console import Console

from ecotune.cli._common import (
    REPORT_ROOT,
    BadInput,
    _choose_storage,
    _print_front,
    _print_not_drawn,
    _print_paths,
    _storage_failed,
)


def _report(args: argparse.Namespace, console: Console) -> int:
    import optuna

    from ecotune.report import NothingToReport, safe_name, write_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, source = _choose_storage(args.storage, must_exist=True)
    from ecotune.search.storage import RedactedStorage, open_storage
    from ecotune.search.storage_url import STORAGE_ENV, describe_storage, redact_url

    shown = redact_url(storage)
    try:
        # Read through the redacting view: an older study may hold a password in its spec.
        storage_obj = RedactedStorage(open_storage(storage))
        summaries = optuna.get_all_study_summaries(storage_obj)
    except Exception as err:
        raise _storage_failed(storage, err) from None
    if os.environ.get(STORAGE_ENV):  # then say whether it was used
        console.print(f"storage: {describe_storage(storage, source)}", highlight=False)
    names = [s.study_name for s in summaries]
    name = args.study_name
    if name is None:
        if len(names) != 1:
            raise BadInput(f"storage {shown} holds {len(names)} studies {names}: "
                           "choose one with --study-name")
        name = names[0]
    elif name not in names:
        raise BadInput(f"no study {name!r} in {shown}; it holds {names}")
    study = optuna.load_study(study_name=name, storage=storage_obj)
    out = args.out or REPORT_ROOT / safe_name(name)
    try:
        paths = write_report(study, out, png=False if args.no_png else None,
                             color_by=args.color_by)
    except NothingToReport as err:  # a study with nothing to show: an error, not bad input
        Console(stderr=True).print(f"[bold red]ecotune: error:[/] {err}", highlight=False,
                                   soft_wrap=True)
        return 1
    except ValueError as err:
        raise BadInput(str(err)) from None
    _print_front(study, console)
    _print_not_drawn(paths, console)
    _print_paths(paths, console)
    return 0
