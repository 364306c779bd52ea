"""``ecotune dashboard``: optuna-dashboard on a storage, on 127.0.0.1 by default."""

from __future__ import annotations

import argparse

from rich.console import Console

from ecotune.cli._common import BadInput, _check_storage_exists, _one_line


def _dashboard(args: argparse.Namespace, console: Console) -> int:
    if not 0 < args.port < 65536:
        raise BadInput(f"--port must be between 1 and 65535 (got {args.port})")
    _check_storage_exists(args.storage)
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from ecotune.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(args.storage)
    except Exception as err:
        raise BadInput(f"storage {args.storage}: {_one_line(err)}") from None
    args.artifact_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"optuna-dashboard on {args.storage}: http://{args.host}:{args.port}/dashboard "
                  f"(artifacts in {args.artifact_dir}; Ctrl-C stops it)", highlight=False)
    try:
        run_server(storage, host=args.host, port=args.port,
                   artifact_store=FileSystemArtifactStore(str(args.artifact_dir)))
    except OSError as err:  # the port is taken, or the host is not an address of this machine
        raise BadInput(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    except KeyboardInterrupt:
        pass
    return 0
