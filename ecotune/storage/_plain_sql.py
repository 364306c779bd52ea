"""Optuna's writes of every trial (creation, a parameter, a system attribute, the state
and values), and the look-up of a trial by its number, as plain SQL on a pooled
connection, with Optuna's semantics.

Each of them is one transaction through SQLAlchemy's ORM in Optuna's ``RDBStorage``, and
on SQLite the ORM's session, query and statement building cost about 2.5 ms a
transaction here against well under 0.1 ms for the database's own work (the same reason
:mod:`ecotune.storage._batch` writes attributes this way). The functions here run the
statements Optuna's ORM runs, in one transaction each, with the same rows and columns:

- :func:`create_trial`: Optuna's ``_create_new_trial`` without a template. The study row
  is read (``FOR UPDATE`` on PostgreSQL, as Optuna locks it: trial numbers are counted
  under that lock), the trial inserted as ``RUNNING`` with ``datetime_start`` now (stored
  in naive UTC, as Optuna 5 stores it), its number set to the count of the study's
  trials with a lower id, and optionally its first heartbeat row; committed together.
- :func:`set_param`: Optuna's ``_set_trial_param``: the trial must be updatable, the
  distribution compatible with the study's earlier one of that name, then one row in
  ``trial_params`` (a duplicate row is ignored, as Optuna ignores it).
- :func:`set_system_attr`: Optuna's ``set_trial_system_attr`` (a constraint, a rung's
  point): the trial must be updatable, then one upsert of its row in
  ``trial_system_attributes`` (a new value replaces the stored one).
- :func:`set_finished_state_values`: Optuna's ``set_trial_state_values`` for a finished
  state (COMPLETE, PRUNED, FAIL): the trial row read (``FOR UPDATE`` on PostgreSQL), the
  values upserted (one row per objective, infinities as Optuna stores them), optionally
  user attributes upserted (:func:`upsert_user_attrs`: those a trial held for its end),
  the state and ``datetime_complete`` set. An integrity error returns False, as
  Optuna's does.
- :func:`set_user_attrs`: Optuna's ``set_trial_user_attr`` for many attributes at once:
  the trial must be updatable, then :func:`upsert_user_attrs`: the rows of
  ``trial_user_attributes`` Optuna writes, one statement per 300 (a new value replaces
  the stored one), which the finished state's transaction runs too.
- :func:`trial_id_of_number`: Optuna's ``get_trial_id_from_study_id_trial_number`` (a
  worker counts the study's trials with it under the claim lock, once per trial).

Column values go through the columns' own SQLAlchemy type processors (enums by name,
SQLite's datetime text), so the stored text is what the ORM would store. The engine's
events see every statement. Only SQLite (3.24 and later: upsert) and PostgreSQL get
these; :func:`supported` says where. Errors Optuna raises come out the same (``KeyError``
for a missing row, ``UpdateFinishedTrialError``, an incompatible distribution's
``ValueError``); any other database error rolls the transaction back, and the caller
runs Optuna's own write instead (which then raises Optuna's error, or succeeds).
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna import distributions
from optuna.trial import TrialState

__all__ = ["supported", "create_trial", "set_param", "set_system_attr",
           "set_user_attrs", "set_finished_state_values", "upsert_user_attrs",
           "trial_id_of_number"]

#: A driver's parameter marker by its DB-API paramstyle (sqlite3: qmark, psycopg: format);
#: the storage package's plain SQL (here, the attribute batches, the bulk read) uses it.
PARAM_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def supported(engine: Any) -> bool:
    """Whether ``engine``'s database gets the plain writes (SQLite with upsert,
    PostgreSQL, through a driver whose parameter marker is known)."""
    if engine.dialect.paramstyle not in PARAM_MARKS:
        return False
    if engine.name == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 24, 0)
    return engine.name == "postgresql"


#: _processors by the dialect's kind (one entry per database driver, not per engine).
_PROCESSORS: dict[tuple, dict[str, Any]] = {}


def _processors(dialect: Any) -> dict[str, Any]:
    """The bind processors (Python value -> driver value) of the columns written here, as
    SQLAlchemy applies them for ``dialect`` (identity where a type has none)."""
    key = (type(dialect), dialect.name, dialect.driver)
    found = _PROCESSORS.get(key)
    if found is None:
        found = _PROCESSORS[key] = _processors_for(dialect)
    return found


def _processors_for(dialect: Any) -> dict[str, Any]:
    from optuna.storages._rdb import models

    def bind(model: Any, column: str):
        return (model.__table__.c[column].type.bind_processor(dialect)
                or (lambda value: value))

    return {"state": bind(models.TrialModel, "state"),
            "datetime": bind(models.TrialModel, "datetime_start"),
            "value_type": bind(models.TrialValueModel, "value_type")}


def _sql(engine: Any, text: str) -> str:
    """``text`` with ``?`` markers in the driver's own and ``{lock}`` as the dialect's
    row lock (PostgreSQL: ``FOR UPDATE``; SQLite locks the database on write)."""
    mark = PARAM_MARKS[engine.dialect.paramstyle]
    lock = " FOR UPDATE" if engine.name == "postgresql" else ""
    return text.replace("?", mark).replace("{lock}", lock)


def _utc_naive(local: datetime.datetime) -> datetime.datetime:
    """A naive local time as Optuna 5 stores it: naive UTC."""
    return local.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _local_naive(utc: datetime.datetime) -> datetime.datetime:
    """A stored naive UTC time as Optuna's models read it back: naive local time."""
    return utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


def _not_found() -> KeyError:
    from optuna.storages._rdb.models import NOT_FOUND_MSG

    return KeyError(NOT_FOUND_MSG)  # what Optuna's find_or_raise_by_id raises


def _check_updatable(conn: Any, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
    """Optuna's checks before a write to a trial: it exists (``KeyError``) and is not
    finished (``UpdateFinishedTrialError``)."""
    row = conn.exec_driver_sql(_sql(storage.engine, "SELECT state FROM trials WHERE "
                                                    "trial_id = ?"), (trial_id,)).first()
    if row is None:
        raise _not_found()
    storage.check_trial_is_updatable(trial_id, TrialState[row[0]])


def create_trial(engine: Any, study_id: int, heartbeat: bool) -> optuna.trial.FrozenTrial:
    """A new running trial of study ``study_id`` (see the module's docstring); with
    ``heartbeat``, its first heartbeat row (the database's clock) in the same
    transaction."""
    p = _processors(engine.dialect)
    with engine.begin() as conn:
        if conn.exec_driver_sql(_sql(engine, "SELECT study_id FROM studies "
                                             "WHERE study_id = ?{lock}"),
                                (study_id,)).first() is None:
            raise _not_found()
        stored_start = _utc_naive(datetime.datetime.now())
        values = (study_id, p["state"](TrialState.RUNNING), p["datetime"](stored_start))
        insert = ("INSERT INTO trials (number, study_id, state, datetime_start, "
                  "datetime_complete) VALUES (NULL, ?, ?, ?, NULL)")
        if engine.name == "sqlite":
            trial_id = conn.exec_driver_sql(_sql(engine, insert), values).lastrowid
        else:
            trial_id = conn.exec_driver_sql(_sql(engine, insert + " RETURNING trial_id"),
                                            values).scalar_one()
        number = conn.exec_driver_sql(_sql(engine, "SELECT count(trial_id) FROM trials "
                                                   "WHERE study_id = ? AND trial_id < ?"),
                                      (study_id, trial_id)).scalar_one()
        conn.exec_driver_sql(_sql(engine, "UPDATE trials SET number = ? WHERE trial_id = ?"),
                             (number, trial_id))
        if heartbeat:  # the column's default, as Optuna's heartbeat row: the database's now
            conn.exec_driver_sql(_sql(engine, "INSERT INTO trial_heartbeats (trial_id, "
                                              "heartbeat) VALUES (?, CURRENT_TIMESTAMP)"),
                                 (trial_id,))
    return optuna.trial.FrozenTrial(
        number=number, state=TrialState.RUNNING, value=None, values=None,
        datetime_start=_local_naive(stored_start), datetime_complete=None, params={},
        distributions={}, user_attrs={}, system_attrs={}, intermediate_values={},
        trial_id=trial_id)


def set_param(storage: optuna.storages.RDBStorage, trial_id: int, param_name: str,
              param_value_internal: float, distribution: distributions.BaseDistribution,
              previous_distribution: distributions.BaseDistribution | None) -> None:
    """Optuna's ``storage._set_trial_param(...)`` (see the module's docstring)."""
    from sqlalchemy import exc

    engine = storage.engine
    try:
        with engine.begin() as conn:
            row = conn.exec_driver_sql(_sql(engine, "SELECT study_id, state FROM trials "
                                                    "WHERE trial_id = ?"),
                                       (trial_id,)).first()
            if row is None:
                raise _not_found()
            storage.check_trial_is_updatable(trial_id, TrialState[row[1]])
            if previous_distribution is None:  # the study's first use of the name
                earlier = conn.exec_driver_sql(_sql(
                    engine, "SELECT trial_params.distribution_json FROM trial_params JOIN "
                            "trials ON trials.trial_id = trial_params.trial_id WHERE "
                            "trials.study_id = ? AND trial_params.param_name = ? LIMIT 1"),
                    (row[0], param_name)).first()
                if earlier is not None:
                    previous_distribution = distributions.json_to_distribution(earlier[0])
            if previous_distribution is not None:
                distributions.check_distribution_compatibility(previous_distribution,
                                                               distribution)
            conn.exec_driver_sql(_sql(engine, "INSERT INTO trial_params (trial_id, "
                                              "param_name, param_value, distribution_json) "
                                              "VALUES (?, ?, ?, ?)"),
                                 (trial_id, param_name, param_value_internal,
                                  distributions.distribution_to_json(distribution)))
    except exc.IntegrityError:
        return  # as Optuna: another process wrote the same row first


def set_system_attr(storage: optuna.storages.RDBStorage, trial_id: int, key: str,
                    value: Any) -> None:
    """Optuna's ``storage.set_trial_system_attr(trial_id, key, value)`` (see the
    module's docstring)."""
    engine = storage.engine
    with engine.begin() as conn:
        _check_updatable(conn, storage, trial_id)
        conn.exec_driver_sql(_sql(engine, 'INSERT INTO trial_system_attributes (trial_id, '
                                          '"key", value_json) VALUES (?, ?, ?) ON CONFLICT '
                                          '(trial_id, "key") DO UPDATE SET '
                                          "value_json = excluded.value_json"),
                             (trial_id, key, json.dumps(value)))


#: Rows per upsert statement: 900 parameters, within old SQLite's limit of 999.
_ROWS_PER_STATEMENT = 300


def upsert_user_attrs(conn: Any, trial_id: int, attrs_json: Mapping[str, str]) -> None:
    """Write ``attrs_json`` (attribute name -> its value as JSON text) as user attributes
    of ``trial_id`` on ``conn``, in the caller's transaction (which checked that the
    trial is updatable)."""
    rows = [(trial_id, key, value_json) for key, value_json in attrs_json.items()]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_sql(conn.engine, (
            'INSERT INTO trial_user_attributes (trial_id, "key", value_json) VALUES '
            + ", ".join(["(?, ?, ?)"] * len(chunk))
            + ' ON CONFLICT (trial_id, "key") DO UPDATE SET value_json = excluded.value_json')),
            tuple(v for row in chunk for v in row))


def set_user_attrs(storage: optuna.storages.RDBStorage, trial_id: int,
                   attrs_json: Mapping[str, str]) -> None:
    """Optuna's ``storage.set_trial_user_attr(trial_id, key, value)`` for each of
    ``attrs_json`` (name -> the value as JSON text), in one transaction: the trial must be
    updatable, then :func:`upsert_user_attrs`."""
    engine = storage.engine
    with engine.begin() as conn:
        _check_updatable(conn, storage, trial_id)
        upsert_user_attrs(conn, trial_id, attrs_json)


def set_finished_state_values(storage: optuna.storages.RDBStorage, trial_id: int,
                              state: TrialState, values: Sequence[float] | None,
                              user_attrs_json: Mapping[str, str] | None = None) -> bool:
    """Optuna's ``storage.set_trial_state_values(trial_id, state, values)`` for a
    finished ``state`` (see the module's docstring), with ``user_attrs_json`` (name ->
    JSON text) written as user attributes in the same transaction."""
    from optuna.storages._rdb import models
    from sqlalchemy import exc

    assert state.is_finished()
    engine = storage.engine
    p = _processors(engine.dialect)
    try:
        with engine.begin() as conn:
            row = conn.exec_driver_sql(_sql(engine, "SELECT state FROM trials "
                                                    "WHERE trial_id = ?{lock}"),
                                       (trial_id,)).first()
            if row is None:
                raise _not_found()
            storage.check_trial_is_updatable(trial_id, TrialState[row[0]])
            if values:
                rows = []
                for objective, value in enumerate(values):
                    stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                    rows.extend((trial_id, objective, stored, p["value_type"](kind)))
                conn.exec_driver_sql(_sql(engine, (
                    "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                    "VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(values)) +
                    " ON CONFLICT (trial_id, objective) DO UPDATE SET "
                    "value = excluded.value, value_type = excluded.value_type")),
                    tuple(rows))
            if user_attrs_json:
                upsert_user_attrs(conn, trial_id, user_attrs_json)
            conn.exec_driver_sql(_sql(engine, "UPDATE trials SET state = ?, "
                                              "datetime_complete = ? WHERE trial_id = ?"),
                                 (p["state"](state),
                                  p["datetime"](_utc_naive(datetime.datetime.now())),
                                  trial_id))
    except exc.IntegrityError:
        return False  # as Optuna
    return True


def trial_id_of_number(engine: Any, study_id: int, trial_number: int) -> int | None:
    """The id of trial ``trial_number`` of study ``study_id``; raises Optuna's
    ``KeyError`` where there is none. None where two trials share the number (Optuna's
    own read then raises its error)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(_sql(engine, "SELECT trial_id FROM trials WHERE "
                                                 "number = ? AND study_id = ? LIMIT 2"),
                                    (trial_number, study_id)).all()
    if not rows:
        raise KeyError(f"No trial with trial number {trial_number} "
                       f"exists in study with study_id {study_id}.")
    return rows[0][0] if len(rows) == 1 else None
