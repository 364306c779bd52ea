"""Open Optuna storage from a URL, tuned for how ecotune uses it.

SQLite files are opened in WAL mode with ``synchronous=NORMAL``: a trial writes a dozen
attributes, and with the default rollback journal each write waits for an fsync (about
3 ms here; with WAL about half that, see benchmarks/overhead.py). WAL also lets readers
(optuna-dashboard, ``ecotune report``) read while a study runs. The database's ``-wal``
and ``-shm`` files sit beside it while it is open (docs/index.md, Storage). A committed
trial survives a crash of the process; only a power loss can lose the last commits.

Relational storage records a heartbeat for every running trial (every
``ECOTUNE_HEARTBEAT_S`` seconds, default 10): a trial whose worker died (killed, machine
lost) is failed once its heartbeat is older than ``ECOTUNE_GRACE_S`` (default 60), by the
next worker that starts a trial (a running worker looks once per heartbeat interval).
``journal:///PATH`` opens Optuna's journal storage on a file (for clusters that share
only a file system); it has no heartbeat. See docs/scaling.md.

Optuna's ``trials`` table is indexed by study only, so a trial looked up by its number
(Optuna's ``get_trial_id_from_study_id_trial_number``, which ecotune's trial counts probe
about three times a trial, :func:`ecotune.storage.count_from`) reads every trial of the
study: at 10,000 trials ~1 ms a look-up on SQLite. ecotune adds an index on ``(study_id, number)``,
:data:`TRIAL_NUMBER_INDEX`, where it is missing, when it opens a study to run trials
(:func:`index_trial_numbers`); Optuna reads and migrates the database
as before (its schema version is untouched; an index is no column or table).

A URL's password is shown nowhere (:mod:`ecotune.storage._url`); studies stored by
older versions may still hold one in an attribute, so the commands that show a study
(report, dashboard) read it through :class:`RedactedStorage`.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import event, exc, inspect

from ecotune.storage._per_trial import PerTrialRDBStorage
from ecotune.storage._url import check_storage_url, scrub

__all__ = ["open_storage", "journal_path", "heartbeat_settings_s", "JOURNAL_SCHEME",
           "RedactedStorage", "TRIAL_NUMBER_INDEX", "index_trial_numbers"]

#: Storage URL scheme of Optuna's journal storage on a file: ``journal:///relative.log`` or
#: ``journal:////absolute/path.log`` (slashes as in SQLite URLs).
JOURNAL_SCHEME = "journal:///"
HEARTBEAT_ENV = "ECOTUNE_HEARTBEAT_S"
GRACE_ENV = "ECOTUNE_GRACE_S"
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 60
#: ecotune's index on Optuna's ``trials`` table, ``(study_id, number)``.
TRIAL_NUMBER_INDEX = "ix_ecotune_trials_study_id_number"


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


def index_trial_numbers(storage: optuna.storages.BaseStorage) -> None:
    """Create :data:`TRIAL_NUMBER_INDEX` on relational ``storage`` (or the one Optuna's
    trial cache wraps) where it is missing: for a study that will run trials
    (:func:`ecotune.create_study`); the commands that only read a study (report,
    dashboard) leave the database as it is. Looked for first: creating an index locks
    the table against writes on PostgreSQL, even when it exists. A database user without
    the right to create it, or a worker that lost the race to another, gets a slower
    look-up and nothing else.

    Example:
        >>> index_trial_numbers(optuna.storages.InMemoryStorage())  # no table: nothing
    """
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", None)
    if not isinstance(backend, optuna.storages.RDBStorage) or engine is None:
        return
    try:
        if any(ix["name"] == TRIAL_NUMBER_INDEX for ix in inspect(engine).get_indexes("trials")):
            return
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {TRIAL_NUMBER_INDEX} "
                                 "ON trials (study_id, number)")
    except exc.SQLAlchemyError:
        return


def open_storage(
    storage: str | optuna.storages.BaseStorage | None,
) -> optuna.storages.BaseStorage:
    """A storage object for a URL (None: in memory); storage objects are returned as is.

    Optuna wraps an ``RDBStorage`` in its trial cache itself when a study uses it. A
    relational URL gets a :class:`~ecotune.storage.PerTrialRDBStorage`: Optuna's, with a
    faster read of many trials (:class:`~ecotune.storage.BulkReadRDBStorage`) and fewer
    round trips per trial.

    Raises:
        StorageURLError: (a ValueError) ``storage`` is not a URL, or the directory of its
            SQLite or journal file does not exist (nothing is created then).
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(storage, str):
        return storage
    check_storage_url(storage)
    log = journal_path(storage)
    if log is not None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        # The open(2)-based lock works on NFS too, where symlink locks may not.
        backend = JournalFileBackend(str(log), lock_obj=JournalFileOpenLock(str(log)))
        return optuna.storages.JournalStorage(backend)
    if ":memory:" in storage:
        # One database per connection: a heartbeat thread would see an empty one. Nothing
        # outlives the process anyway, so there is no stale trial to detect.
        return PerTrialRDBStorage(storage)
    interval_s, grace_s = heartbeat_settings_s()
    with warnings.catch_warnings():
        # Heartbeats are "experimental" since Optuna 2.9, and the way Optuna fails stale trials.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = PerTrialRDBStorage(storage, heartbeat_interval=interval_s,
                                 grace_period=grace_s)
    if storage.startswith("sqlite:///"):
        event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # connections opened before the listener get the pragmas too
    return rdb


def _redacted(value: Any) -> Any:
    """``value`` (attribute data: JSON-like) with passwords in URLs hidden; the same object
    when there is none, so that reading a clean study copies nothing."""
    if not _may_hold_password(value):
        return value
    if isinstance(value, str):
        return scrub(value) if "@" in value or "passw" in value.lower() else value
    if isinstance(value, dict):
        items = {k: _redacted(v) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, list | tuple):
        items = [_redacted(v) for v in value]
        if any(new is not old for new, old in zip(items, value)):
            return type(value)(items)
    return value


class RedactedStorage(optuna.storages.BaseStorage):
    """A storage as the commands that show a study read it: every study and trial attribute
    comes back with passwords in URLs hidden (``ecotune.spec`` of a study stored before
    ecotune hid them, a failure reason that quoted a URL), and constraints also in the
    legacy list optuna-dashboard reads (:func:`dashboard_constraints`). Writes go through
    unchanged.

    Example:
        >>> inner = optuna.storages.InMemoryStorage()
        >>> study = optuna.create_study(storage=inner, study_name="old")
        >>> study.set_user_attr("ecotune.spec", {"storage": "postgresql://ann:pw@db/x"})
        >>> view = optuna.load_study(study_name="old", storage=RedactedStorage(inner))
        >>> view.user_attrs
        {'ecotune.spec': {'storage': 'postgresql://ann:***@db/x'}}
    """

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        # Finished trials never change: each is redacted once (a report reads the study's
        # trials a dozen times; at 100,000 trials each walk of their attributes costs).
        self._finished: dict[int, optuna.trial.FrozenTrial] = {}

    # Readers of attributes: redacted.
    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return _redacted(self._storage.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return _redacted(self._storage.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[optuna.study.FrozenStudy]:
        studies = []
        for study in self._storage.get_all_studies():
            user, system = _redacted(study.user_attrs), _redacted(study.system_attrs)
            if user is not study.user_attrs or system is not study.system_attrs:
                study = copy.copy(study)  # the wrapped storage's own object stays as it is
                study.user_attrs, study.system_attrs = user, system
            studies.append(study)
        return studies

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        return _redacted_trial(self._storage.get_trial(trial_id))

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Any = None) -> list[optuna.trial.FrozenTrial]:
        trials = self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if deepcopy:  # the caller's own copies: never shared
            return [_redacted_trial(t) for t in trials]
        return [self._finished_redacted(t) for t in trials]

    def _finished_redacted(self, trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        if not trial.state.is_finished():
            return _redacted_trial(trial)
        done = self._finished.get(trial._trial_id)
        if done is None:
            done = self._finished[trial._trial_id] = _redacted_trial(trial)
        return done

    # Everything else: as the wrapped storage does it.
    def create_new_study(self, *args: Any, **kwargs: Any) -> int:
        return self._storage.create_new_study(*args, **kwargs)

    def delete_study(self, study_id: int) -> None:
        self._storage.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._storage.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[optuna.study.StudyDirection]:
        return self._storage.get_study_directions(study_id)

    def create_new_trial(self, *args: Any, **kwargs: Any) -> int:
        return self._storage.create_new_trial(*args, **kwargs)

    def set_trial_param(self, *args: Any, **kwargs: Any) -> None:
        self._storage.set_trial_param(*args, **kwargs)

    def set_trial_state_values(self, *args: Any, **kwargs: Any) -> bool:
        return self._storage.set_trial_state_values(*args, **kwargs)

    def set_trial_intermediate_value(self, *args: Any, **kwargs: Any) -> None:
        self._storage.set_trial_intermediate_value(*args, **kwargs)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def remove_session(self) -> None:
        self._storage.remove_session()


def _may_hold_password(value: Any) -> bool:
    """Whether a string in ``value`` might need :func:`scrub`: a walk that builds nothing
    (most attribute data is numbers), so a clean trial costs little to check."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "@" in item or "passw" in item.lower():
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def dashboard_constraints(system_attrs: dict[str, Any]) -> dict[str, Any]:
    """``system_attrs`` with the legacy ``constraints`` list optuna-dashboard 0.21 reads
    (it knows no other form), made from Optuna 5's ``constraints:<name>`` keys in name
    order; the same object where there are none or the list is already there.

    Only the dashboard's view gets it, never the storage: Optuna 5 reads that list as
    constraints too ("0", "1", ...), beside the named ones, so stored it would count each
    constraint twice (the GP sampler models each constraint, and a feasibility
    probability would be squared), though feasibility itself would not change.

    Example:
        >>> dashboard_constraints({"constraints:trial_energy_j": 2.5, "constraints:a": -1.0})
        {'constraints:trial_energy_j': 2.5, 'constraints:a': -1.0, 'constraints': [-1.0, 2.5]}
    """
    named = sorted((k, v) for k, v in system_attrs.items() if k.startswith("constraints:"))
    if not named or "constraints" in system_attrs:
        return system_attrs
    return {**system_attrs, "constraints": [v for _, v in named]}


def _redacted_trial(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    user = _redacted(trial.user_attrs)
    system = dashboard_constraints(_redacted(trial.system_attrs))
    if user is trial.user_attrs and system is trial.system_attrs:
        return trial
    trial = copy.copy(trial)
    trial.user_attrs, trial.system_attrs = user, system
    return trial
