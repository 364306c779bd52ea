"""Optuna's relational storage with a faster bulk read of a study's trials.

A process's first look at a study reads every trial: Optuna's ``study.ask`` does (its trial
cache syncs from storage before it looks for a waiting trial), and so do the samplers and
``ecotune report``. Optuna reads them through SQLAlchemy's ORM: at 10,000 ecotune trials
(about fifteen attributes each, a learning curve among them) that is 170,000 ORM objects,
about 10 s on a 2-core machine, and the first trial of a worker joining the study waits
for it. :class:`BulkReadRDBStorage` reads the same rows with one plain ``SELECT`` per
table (the driver's tuples, not SQLAlchemy's rows or ORM objects) and builds the same
``FrozenTrial`` objects from them, several times faster and with less memory; of a
finished trial's user attributes it reads only those its :attr:`READ_WITH_TRIAL` names
(what the study's energy spent needs), the rest when first read
(:mod:`ecotune.storage._lazy_trial`): a joining worker's sampler, energy sum and early
stopper need none of them. The trial cache's later syncs (before every trial: most often
the one trial the worker has just finished, or none) run as plain SQL text, the same
statements without SQLAlchemy's statement building (~2 ms a sync). Everything else
(writes, heartbeats, Optuna's trial cache around it) is Optuna's own. Where the plain
read fails (e.g. a database refusing a long ``IN`` list), Optuna's own read runs instead.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import json
import time
from collections.abc import Callable, Container, Iterator, Sequence
from sys import intern
from typing import Any

import optuna
from optuna.distributions import json_to_distribution
from optuna.trial import FrozenTrial

from ecotune.names import ATTR_ENERGY, ATTR_EVALUATION_ENERGY
from ecotune.storage._lazy_trial import stored_trials
from ecotune.storage._plain_sql import PARAM_MARKS

__all__ = ["BulkReadRDBStorage", "collector_paused"]


class BulkReadRDBStorage(optuna.storages.RDBStorage):
    """``optuna.storages.RDBStorage`` whose reads of many trials skip the ORM.

    Example:
        >>> storage = BulkReadRDBStorage("sqlite:///:memory:")
        >>> study = optuna.create_study(storage=storage)
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        >>> [t.number for t in study.get_trials()] == [0, 1, 2]
        True
    """

    #: User attributes of a finished trial read with it; the others are read when first
    #: needed (:mod:`ecotune.storage._lazy_trial`). These: what the study's energy spent
    #: reads of every trial (``ecotune.rules.search_energy_j``).
    READ_WITH_TRIAL = frozenset({ATTR_ENERGY, ATTR_EVALUATION_ENERGY})

    def _get_trials(self, study_id: int, states: Container[optuna.trial.TrialState] | None,
                    included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        # The signature and meaning of Optuna's own (the trial cache calls it): trials of
        # the study with an id in included_trial_ids (ids <= trial_id_greater_than) or
        # above trial_id_greater_than, in the given states, by id.
        try:
            with collector_paused():
                return _read_trials(self.engine, study_id, states, included_trial_ids,
                                    trial_id_greater_than, self.READ_WITH_TRIAL,
                                    self._told_trials)
        except Exception:  # noqa: BLE001 - any failure of the fast path: Optuna's own read
            return super()._get_trials(study_id, states, included_trial_ids,
                                       trial_id_greater_than)

    def _told_trials(self, rows: Sequence[Any]) -> dict[int, FrozenTrial] | None:
        """The trials of ``rows`` (trial id, number, state, start, complete: a sync's
        read of the trials table) as this object finished them, where it knows every one
        of them as stored; None otherwise (here always: a subclass may know them)."""
        return None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while many objects are built at once:
    10,000 trials are some 100,000 new containers, and the full collections they set off
    over a worker's heap (torch loaded) were 40 % of the read (benchmarks/scale.py), of
    the report's too. Reference counting still frees what is dropped; the collector runs
    again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Up to this many trials, the child rows are selected by a list of ids (see _read_trials).
_LITERAL_IDS = 1000


def _read_trials(engine, study_id: int, states, included_trial_ids: set[int],
                 trial_id_greater_than: int,
                 read_with_trial: frozenset[str] = frozenset(),
                 told: Callable[[Sequence[Any]], dict[int, FrozenTrial] | None] | None = None,
                 ) -> list[FrozenTrial]:
    from optuna.storages._rdb import models
    from optuna.trial import TrialState
    from sqlalchemy import or_, select

    trials_t = models.TrialModel.__table__
    included = {i for i in included_trial_ids if i <= trial_id_greater_than}
    defer = bool(engine.url.database) and engine.url.database != ":memory:"
    # A trial cache's sync after its first read (every state, trials above the last
    # finished one): most often one trial or none, in plain SQL (_read_few).
    if states is None and trial_id_greater_than > -1 and engine.name in (
            "sqlite", "postgresql") and engine.dialect.paramstyle in PARAM_MARKS:
        few = _read_few(engine, study_id, included, trial_id_greater_than, read_with_trial,
                        defer, told)
        if few is not None:
            return few
    where = [trials_t.c.study_id == study_id]
    if states is not None:
        where.append(trials_t.c.state.in_(list(states)))
    if included and trial_id_greater_than > -1:
        where.append(or_(trials_t.c.trial_id.in_(sorted(included)),
                         trials_t.c.trial_id > trial_id_greater_than))
    elif trial_id_greater_than > -1:
        where.append(trials_t.c.trial_id > trial_id_greater_than)
    chosen = select(trials_t.c.trial_id).where(*where).scalar_subquery()

    def children(model, *columns, where=None, conn=None):
        table = model.__table__
        return _rows(engine, conn, model, columns,
                     table.c.trial_id.in_(chosen) if where is None else where)

    attrs_t = models.TrialUserAttributeModel.__table__
    attr_id = attrs_t.primary_key.columns.values()[0].name
    # Of a finished trial, only the attributes named in read_with_trial now; the rest when
    # something reads them (they never change). Not in an in-memory database: another
    # thread's connection there is another, empty database.
    unfinished = select(trials_t.c.trial_id).where(
        *where, trials_t.c.state.in_([TrialState.RUNNING, TrialState.WAITING]))

    fetch_rest = functools.partial(_read_trials_rest, engine, read_with_trial=read_with_trial)

    with engine.connect() as conn, conn.begin():  # one snapshot where the database has them
        study_exists = conn.execute(
            select(models.StudyModel.__table__.c.study_id)
            .where(models.StudyModel.__table__.c.study_id == study_id)).first()
        if study_exists is None:
            raise KeyError(f"no study with study_id {study_id}")
        rows = conn.execute(select(trials_t.c.trial_id, trials_t.c.number, trials_t.c.state,
                                   trials_t.c.datetime_start, trials_t.c.datetime_complete)
                            .where(*where).order_by(trials_t.c.trial_id)).all()
        if not rows:
            # No trial matched (a worker's trial cache, synced before each trial, most
            # often finds nothing new): the five child tables have no row of theirs.
            return []
        if len(rows) <= _LITERAL_IDS:
            # A trial cache's sync reads a few trials: their ids as literals, so that the
            # database reads the child tables through their trial_id index (PostgreSQL
            # planned the subquery as a scan of a whole table: ~65 ms a sync at 10,000
            # trials); the same trials, read in the same transaction.
            chosen = [row[0] for row in rows]
        parts = _empty_parts(rows)
        _values_and_params(parts, functools.partial(children, conn=conn))
        decode = _DECODER.decode
        # Kept as stored: decoded when something reads them (_lazy_trial.py).
        for trial_id, row_id, key, value_json in children(
                models.TrialUserAttributeModel, attr_id, "key", "value_json",
                where=(attrs_t.c.trial_id.in_(chosen)
                       & (attrs_t.c.key.in_(read_with_trial)
                          | attrs_t.c.trial_id.in_(unfinished.scalar_subquery())))
                if defer else None, conn=conn):
            parts[trial_id]["user"].append((row_id, intern(key), value_json))
        for trial_id, key, value_json in children(models.TrialSystemAttributeModel, "key",
                                                  "value_json", conn=conn):
            parts[trial_id]["system"][_shared(key)] = decode(value_json)
        step_model = models.TrialIntermediateValueModel
        for trial_id, step, value, kind in children(
                step_model, "step", "intermediate_value", "intermediate_value_type",
                conn=conn):
            parts[trial_id]["intermediate"][step] = (
                step_model.stored_repr_to_intermediate_value(value, kind))
    return _assemble(rows, parts, defer, fetch_rest, read_with_trial)


def _empty_parts(rows) -> dict[int, dict[str, Any]]:
    """Per trial of ``rows`` (trial id first), the child rows' places, empty."""
    return {row[0]: {"values": {}, "params": {}, "distributions": {}, "user": [],
                     "system": {}, "intermediate": {}} for row in rows}


def _values_and_params(parts: dict[int, dict[str, Any]], children) -> None:
    """Fill each trial's values, params and distributions in ``parts`` from the rows
    ``children(model, *columns)`` yields, (trial_id, *columns) each."""
    from optuna.storages._rdb import models

    value_model = models.TrialValueModel
    for trial_id, objective, value, kind in children(value_model, "objective", "value",
                                                     "value_type"):
        parts[trial_id]["values"][objective] = value_model.stored_repr_to_value(value, kind)
    distributions: dict[str, Any] = {}  # the same few distributions, decoded once
    for trial_id, name, value, dist_json in children(
            models.TrialParamModel, "param_name", "param_value", "distribution_json"):
        dist = distributions.get(dist_json)
        if dist is None:
            dist = distributions[dist_json] = json_to_distribution(dist_json)
        parts[trial_id]["params"][name] = dist.to_external_repr(value)
        parts[trial_id]["distributions"][name] = dist


def _rows(engine, conn, model, columns: tuple[str, ...], where) -> Iterator[Any]:
    """The rows of ``model``'s ``trial_id`` and ``columns`` where ``where``, by key."""
    from sqlalchemy import select

    table = model.__table__
    key = table.primary_key.columns.values()[0]
    selected = [table.c.trial_id, *(table.c[c] for c in columns)]
    result = conn.execute(select(*selected).where(where).order_by(key))
    # The driver's plain tuples, not SQLAlchemy rows (a third of the read at 120,000
    # attribute rows); only the columns whose type converts what the driver gives
    # (Optuna's enums) are converted, as SQLAlchemy would.
    convert = [(i, f) for i, f in enumerate(
        c.type.result_processor(engine.dialect, None) for c in selected) if f]
    cursor = result.cursor
    try:
        # In batches: 100,000 trials have 1.6 million attribute rows, JSON text each.
        while batch := cursor.fetchmany(_BATCH_ROWS):
            if not convert:
                yield from batch
                continue
            for row in batch:
                row = list(row)
                for i, f in convert:
                    row[i] = f(row[i])
                yield row
    finally:
        result.close()


def _read_trials_rest(engine, ids: list[int],
                      read_with_trial: frozenset[str]) -> dict[int, list[tuple[int, str, str]]]:
    """The user attributes of trials ``ids`` that their first read left out (all but
    ``read_with_trial``), as (row id, key, JSON text) by trial id."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    trials_t = models.TrialModel.__table__
    attrs_t = models.TrialUserAttributeModel.__table__
    attr_id = attrs_t.primary_key.columns.values()[0].name
    with engine.connect() as conn:
        found = conn.execute(select(func.count()).select_from(trials_t)
                             .where(trials_t.c.trial_id.in_(ids))).scalar()
        if found != len(ids):
            raise KeyError(f"{len(ids) - found} trials read earlier are no longer "
                           "stored (study deleted?): their user attributes are lost")
        rest: dict[int, list[tuple[int, str, str]]] = {i: [] for i in ids}
        for trial_id, row_id, key, value_json in _rows(
                engine, conn, models.TrialUserAttributeModel, (attr_id, "key", "value_json"),
                attrs_t.c.trial_id.in_(ids) & attrs_t.c.key.not_in(read_with_trial)):
            rest[trial_id].append((row_id, intern(key), value_json))
    return rest


def _assemble(rows, parts: dict[int, dict[str, Any]], defer: bool, fetch_rest,
              read_with_trial: frozenset[str]) -> list[FrozenTrial]:
    """The trials of ``rows`` (id, number, state, start, complete) from their child rows
    (``parts`` by trial id)."""
    fields = []
    for trial_id, number, state, start, complete in rows:
        p = parts[trial_id]
        values = p["values"]
        fields.append(dict(
            number=number, state=state, value=None,
            values=[values[i] for i in range(len(values))] if values else None,
            datetime_start=_local(start), datetime_complete=_local(complete),
            params=p["params"], distributions=p["distributions"],
            system_attrs=p["system"], intermediate_values=p["intermediate"],
            trial_id=trial_id))
    return stored_trials(fields, [parts[row[0]]["user"] for row in rows],
                         [defer and row[2].is_finished() for row in rows], fetch_rest,
                         read_with_trial)



#: The columns' result processors (driver value -> Python value) by the dialect's kind.
_RESULT_PROCESSORS: dict[tuple, dict[tuple[str, str], Any]] = {}


def _result_processor(dialect: Any, table: Any, column: str):
    """What SQLAlchemy applies to ``table.column``'s driver value for ``dialect`` (None:
    nothing: the driver's value is the value)."""
    key = (type(dialect), dialect.name, dialect.driver)
    found = _RESULT_PROCESSORS.setdefault(key, {})
    name = (table.name, column)
    if name not in found:
        from sqlalchemy import DateTime

        column_type = table.c[column].type
        # Times through the dialect's own type (SQLite keeps them as text); the rest as
        # _read_trials converts them (Optuna's enums), where the driver's value is not.
        if isinstance(column_type, DateTime):
            column_type = column_type.dialect_impl(dialect)
        found[name] = column_type.result_processor(dialect, None)
    return found[name]


def _read_few(engine, study_id: int, included: set[int], trial_id_greater_than: int,
              read_with_trial: frozenset[str], defer: bool,
              told: Callable[[Sequence[Any]], dict[int, FrozenTrial] | None] | None = None,
              ) -> list[FrozenTrial] | None:
    """:func:`_read_trials` for a trial cache's sync (every state; the trials of
    ``included`` and those above ``trial_id_greater_than`` > -1) as plain SQL text: a worker
    syncs before every trial, most often to read the one trial it just finished, and the
    seven statements' building and compiling in SQLAlchemy cost ~2 ms a sync against
    ~0.3 ms of database work. The same statements, rows and conversions (the columns' own
    result processors) in one transaction; None where more than :data:`_LITERAL_IDS`
    trials matched (:func:`_read_trials` then reads them its own way). Where ``told``
    knows every trial found as stored (the trials this storage object just told), their
    child tables are not read: the same trials come from what it knows."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    mark = PARAM_MARKS[engine.dialect.paramstyle]
    dialect = engine.dialect

    def marks(n: int) -> str:
        return ", ".join([mark] * n)

    trials_t = models.TrialModel.__table__
    where, args = [f'"study_id" = {mark}'], [study_id]
    if included and trial_id_greater_than > -1:
        where.append(f'("trial_id" IN ({marks(len(included))}) OR "trial_id" > {mark})')
        args += [*sorted(included), trial_id_greater_than]
    elif trial_id_greater_than > -1:
        where.append(f'"trial_id" > {mark}')
        args.append(trial_id_greater_than)

    def select(conn, table, columns: tuple[str, ...], where_sql: str, where_args,
               order: str):
        convert = [(i, f) for i, f in enumerate(
            _result_processor(dialect, table, c) for c in columns) if f]
        sql = (f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM "
               f'"{table.name}" WHERE {where_sql} ORDER BY "{order}"')
        found = conn.exec_driver_sql(sql, tuple(where_args)).fetchall()
        if not convert:
            return found
        rows = []
        for row in found:
            row = list(row)
            for i, f in convert:
                row[i] = f(row[i])
            rows.append(row)
        return rows

    def key_of(model) -> str:
        return _primary_key(model.__table__)

    with engine.connect() as conn, conn.begin():  # one snapshot, as _read_trials
        studies_t = models.StudyModel.__table__
        if conn.exec_driver_sql(f'SELECT "study_id" FROM "{studies_t.name}" WHERE '
                                f'"study_id" = {mark}', (study_id,)).first() is None:
            raise KeyError(f"no study with study_id {study_id}")
        rows = select(conn, trials_t, ("trial_id", "number", "state", "datetime_start",
                                       "datetime_complete"), " AND ".join(where), args,
                      "trial_id")
        if not rows:
            return []  # as _read_trials: nothing new, no child table read
        if len(rows) > _LITERAL_IDS:
            return None
        known = told(rows) if told is not None else None
        if known is not None:  # every attribute, in the stored order: nothing to fetch
            return _assemble(rows, _told_parts(rows, known), False, None, read_with_trial)
        ids = [row[0] for row in rows]
        in_ids = f'"trial_id" IN ({marks(len(ids))})'

        def children(model, *columns, extra: str = "", extra_args=()):
            return select(conn, model.__table__, ("trial_id", *columns), in_ids + extra,
                          [*ids, *extra_args], key_of(model))

        parts = _empty_parts(rows)
        _values_and_params(parts, children)
        attrs_model = models.TrialUserAttributeModel
        extra, extra_args = "", ()
        if defer:  # of a finished trial, only read_with_trial now (as _read_trials)
            unfinished = [row[0] for row in rows
                          if row[2] in (TrialState.RUNNING, TrialState.WAITING)]
            named = sorted(read_with_trial)
            either = [f'"key" IN ({marks(len(named))})'] if named else []
            if unfinished:
                either.append(f'"trial_id" IN ({marks(len(unfinished))})')
            extra = f" AND ({' OR '.join(either)})" if either else " AND 1 = 0"
            extra_args = (*named, *unfinished)
        for trial_id, row_id, key, value_json in children(
                attrs_model, key_of(attrs_model), "key", "value_json", extra=extra,
                extra_args=extra_args):
            parts[trial_id]["user"].append((row_id, intern(key), value_json))
        decode = _DECODER.decode
        for trial_id, key, value_json in children(models.TrialSystemAttributeModel, "key",
                                                  "value_json"):
            parts[trial_id]["system"][_shared(key)] = decode(value_json)
        step_model = models.TrialIntermediateValueModel
        for trial_id, step, value, kind in children(
                step_model, "step", "intermediate_value", "intermediate_value_type"):
            parts[trial_id]["intermediate"][step] = (
                step_model.stored_repr_to_intermediate_value(value, kind))

    return _assemble(rows, parts, defer, functools.partial(
        _read_trials_rest, engine, read_with_trial=read_with_trial), read_with_trial)


def _told_parts(rows, known: dict[int, FrozenTrial]) -> dict[int, dict[str, Any]]:
    """The child rows' parts (:func:`_empty_parts`) of the trials of ``rows`` from the
    trials in ``known``, as the tables would give them: every user attribute, as JSON
    text, in the stored order (a trial's own copy keeps it: a new name goes last, a new
    value keeps its place). A finished trial read from the tables holds only
    :attr:`BulkReadRDBStorage.READ_WITH_TRIAL` until more is read; these hold all (a few
    KB a trial, of the trials this process ran)."""
    parts = _empty_parts(rows)
    for trial_id, p in parts.items():
        trial = known[trial_id]
        p["values"] = dict(enumerate(trial.values or ()))
        p["params"] = dict(trial.params)
        p["distributions"] = dict(trial.distributions)
        p["user"] = [(i, intern(key), json.dumps(value))
                     for i, (key, value) in enumerate(trial.user_attrs.items())]
        p["system"] = {_shared(key): value for key, value in trial.system_attrs.items()}
        p["intermediate"] = dict(trial.intermediate_values)
    return parts


@functools.cache
def _primary_key(table: Any) -> str:
    """The name of ``table``'s (one-column) primary key (looked up once per table)."""
    return table.primary_key.columns.values()[0].name


_BATCH_ROWS = 10_000

#: One string object per distinct key (attribute names, the fields of a learning curve's
#: points): every trial repeats the same few, and 100,000 trials hold millions of them.
_KEYS: dict[str, str] = {}


def _shared(key: str) -> str:
    if len(_KEYS) > 100_000:  # keys that are data, not names: stop sharing them
        _KEYS.clear()
    return _KEYS.setdefault(key, key)


_DECODER = json.JSONDecoder(
    object_pairs_hook=lambda pairs: {_shared(k): v for k, v in pairs})


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Stored naive UTC as the naive local time Optuna's trial model gives."""
    if utc is None:
        return None
    # The local offset, found once per minute of UTC time (offsets change on a minute)
    # and local zone (time.tzset() may change it).
    minute = utc.replace(second=0, microsecond=0)
    key = (minute, time.tzname)
    offset = _OFFSETS.get(key)
    if offset is None:
        local = minute.replace(tzinfo=datetime.timezone.utc).astimezone()
        offset = _OFFSETS[key] = local.replace(tzinfo=None) - minute
    return utc + offset


_OFFSETS: dict[tuple, datetime.timedelta] = {}
