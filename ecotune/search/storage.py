"""Open Optuna storage from a URL, tuned for how ecotune uses it.

SQLite files are opened in WAL mode with ``synchronous=NORMAL``: a trial writes a dozen
attributes, and with the default rollback journal each write waits for an fsync (about
3 ms here; with WAL about half that, see benchmarks/overhead.py). WAL also lets readers
(optuna-dashboard, ``ecotune report``) read while a study runs. A committed trial survives
a crash of the process; only a power loss can lose the last commits.
"""

from __future__ import annotations

import optuna
from sqlalchemy import event

__all__ = ["open_storage"]


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
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(storage, str):
        return storage
    rdb = optuna.storages.RDBStorage(storage)
    if storage.startswith("sqlite:///") and ":memory:" not in storage:
        event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # connections opened before the listener get the pragmas too
    return rdb
