"""``ecotune dashboard``: optuna-dashboard on a storage, on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import BinaryIO

from ecotune.cli._common import STORAGE_HELP, BadInput, Command, _choose_storage, _storage_failed


class DashboardCommand(Command):
    name = "dashboard"
    help = "open optuna-dashboard on a storage"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", help=STORAGE_HELP)
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: 127.0.0.1, this machine "
                                 "only)")
        parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
        parser.add_argument("--artifact-dir", type=Path, default=Path("ecotune-artifacts"),
                            help="directory of the dashboard's artifact store "
                                 "(default: ecotune-artifacts)")

    def take_action(self, args: argparse.Namespace) -> int:
        console = self.console
        if not 0 < args.port < 65536:
            raise BadInput(f"--port must be between 1 and 65535 (got {args.port})")
        url, source = _choose_storage(args.storage, must_exist=True)
        import optuna
        from optuna_dashboard import run_server

        from ecotune.storage import RedactedStorage, describe_storage, open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            # The dashboard shows every attribute: an older study may hold a password in its spec.
            storage = RedactedStorage(open_storage(url))
        except Exception as err:
            raise _storage_failed(url, err) from None
        console.print(f"optuna-dashboard on {describe_storage(url, source)}: "
                      f"http://{args.host}:{args.port}/dashboard (artifacts in "
                      f"{args.artifact_dir}; Ctrl-C stops it)", highlight=False)
        try:
            run_server(storage, host=args.host, port=args.port,
                       artifact_store=_lazy_artifact_store(args.artifact_dir))
        except OSError as err:  # the port is taken, or the host is not an address of this machine
            raise BadInput(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
        except KeyboardInterrupt:
            pass
        return 0


def _lazy_artifact_store(directory: Path):  # noqa: ANN202
    """A file-system artifact store whose directory is made at the first upload, so that
    opening the dashboard leaves no empty folder behind."""
    from optuna.artifacts import FileSystemArtifactStore

    class _LazyStore(FileSystemArtifactStore):
        def write(self, artifact_id: str, content_body: BinaryIO) -> None:
            directory.mkdir(parents=True, exist_ok=True)
            super().write(artifact_id, content_body)

    return _LazyStore(str(directory))
