"""Open Optuna storage from a URL, tuned for how ecotune uses it.

SQLite files are opened in WAL mode with ``synchronous=NORMAL``: a trial writes a dozen
attributes, and with the default rollback journal each write waits for an fsync (about
3 ms here; with WAL about half that, see benchmarks/overhead.py). WAL also lets readers
(optuna-dashboard, ``ecotune report``) read while a study runs. A committed trial survives
a crash of the process; only a power loss can lose the last commits.

Relational storage records a heartbeat for every running trial (every
``ECOTUNE_HEARTBEAT_S`` seconds, default 10): a trial whose worker died (killed, machine
lost) is failed once its heartbeat is older than ``ECOTUNE_GRACE_S`` (default 60), by the
next worker that starts a trial. ``journal:///PATH`` opens Optuna's journal storage on a
file (for clusters that share only a file system); it has no heartbeat. See
docs/scaling.md.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna
from sqlalchemy import event

__all__ = ["open_storage", "journal_path", "heartbeat_settings_s", "JOURNAL_SCHEME"]

#: Storage URL scheme of Optuna's journal storage on a file: ``journal:///relative.log`` or
#: ``journal:////absolute/path.log`` (slashes as in SQLite URLs).
JOURNAL_SCHEME = "journal:///"
HEARTBEAT_ENV = "ECOTUNE_HEARTBEAT_S"
GRACE_ENV = "ECOTUNE_GRACE_S"
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 60


def journal_path(url: str) -> Path | None:
    """The log file of a journal storage URL, or None for any other URL.

    Example:
        >>> journal_path("journal:////shared/study.log"), journal_path("journal:///a.log")
        (PosixPath('/shared/study.log'), PosixPath('a.log'))
        >>> journal_path("sqlite:///ecotune.db") is None
        True
    """
    if not url.startswith(JOURNAL_SCHEME):
        return None
    return Path(url.removeprefix(JOURNAL_SCHEME))


def heartbeat_settings_s() -> tuple[int, int]:
    """``(heartbeat interval, grace period)`` in seconds, from the environment or defaults.

    Raises:
        ValueError: a variable is not a whole number of seconds > 0, or the grace period is
            not longer than the interval.
    """
    values = []
    for name, default in ((HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S), (GRACE_ENV, DEFAULT_GRACE_S)):
        raw = os.environ.get(name, str(default))
        if not raw.isdigit() or int(raw) <= 0:
            raise ValueError(f"{name} must be a whole number of seconds > 0 (got {raw!r})")
        values.append(int(raw))
    interval_s, grace_s = values
    if grace_s <= interval_s:
        raise ValueError(f"{GRACE_ENV} ({grace_s} s) must be longer than {HEARTBEAT_ENV} "
                         f"({interval_s} s)")
    return interval_s, grace_s


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_storage(
    storage: str | optuna.storages.BaseStorage | None,
) -> optuna.storages.BaseStorage:
    """A storage object for a URL (None: in memory); storage objects are returned as is.

    Optuna wraps an ``RDBStorage`` in its trial cache itself when a study uses it.

    Raises:
        ValueError: a journal file's directory does not exist (nothing is created then).
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(storage, str):
        return storage
    log = journal_path(storage)
    if log is not None:
        if not log.parent.is_dir():
            raise ValueError(f"no such directory {str(log.parent)!r} for the journal file")
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        # The open(2)-based lock works on NFS too, where symlink locks may not.
        backend = JournalFileBackend(str(log), lock_obj=JournalFileOpenLock(str(log)))
        return optuna.storages.JournalStorage(backend)
    if ":memory:" in storage:
        # One database per connection: a heartbeat thread would see an empty one. Nothing
        # outlives the process anyway, so there is no stale trial to detect.
        return optuna.storages.RDBStorage(storage)
    interval_s, grace_s = heartbeat_settings_s()
    with warnings.catch_warnings():
        # Heartbeats are "experimental" since Optuna 2.9, and the way Optuna fails stale trials.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=interval_s,
                                         grace_period=grace_s)
    if storage.startswith("sqlite:///"):
        event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # connections opened before the listener get the pragmas too
    return rdb
