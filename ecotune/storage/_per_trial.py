"""Relational storage that spends fewer round trips on each trial ecotune runs.

What Optuna does for every trial of ``study.optimize`` on relational storage includes
round trips that carry nothing new to the process running the trial:

- ``study.ask`` creates the trial, then reads it straight back (``Trial.__init__``), and
  ``tell`` reads it again before writing its state: the trial this process created, with
  nothing written to it since but what this process wrote. :class:`PerTrialRDBStorage`
  keeps a copy of each trial it created for ``ask`` while it runs, applies to the copy
  every write it makes to the trial (parameters, attributes, intermediate values; a write
  that fails drops the copy), and serves the reads of that trial in the thread that
  created it from the copy until the trial's state is written. Only a worker that was
  silent for longer than the grace period has its running trial changed by another
  process (failed as dead); its ``tell`` then fails at the state write
  (``UpdateFinishedTrialError``) instead of at the read before it (``ValueError``).
- the heartbeat thread writes the trial's first heartbeat, in a transaction of its own,
  the moment the trial starts. Inside :func:`heartbeat_follows` (ecotune's workers run
  each trial in it) the first heartbeat row is written in the transaction that creates
  the trial instead, with the database's clock as Optuna's is, and the thread's first
  beat is skipped; its later beats are Optuna's own. A worker that dies at once leaves
  the same row as before: its trial is failed once the heartbeat is older than the grace
  period. Outside that block (``study.ask()`` in a loop of one's own, where no heartbeat
  thread runs) creation writes no heartbeat, as Optuna's does.
- before each trial Optuna looks for stale trials (two statements). Inside
  :func:`heartbeat_follows` that look is skipped: ecotune's worker fails dead trials
  itself (:func:`ecotune.execution.run_worker`, once per heartbeat interval), trials
  without any heartbeat included.
- a trial's last attributes and its finished state are two transactions. Attributes
  given to :meth:`PerTrialRDBStorage.hold_user_attrs` (by ``set_user_attrs(...,
  with_finished_state=True)``: the built-in objective's last write) wait for the state's
  transaction and are written in it; the trial's reads in this process see them at once,
  and any other write to the trial through this object writes them first (so the later
  value of a name wins). Where the state is not written as plain SQL, they get a
  transaction of their own before it.
- the trial cache's sync after ``tell`` reads the trial just told, with its five child
  tables. The copy kept while it ran, with its state and values, is that trial as
  stored: the sync takes it from there (:meth:`PerTrialRDBStorage._told_trials`) and reads
  only the trials table, where every trial it finds is one this object told.
- Optuna's writes of every trial (its creation, a parameter, the finished state and
  values) and its look-up of a trial by number go through SQLAlchemy's ORM: ~2.5 ms of
  Python a transaction on SQLite against well under 0.1 ms of database work. On SQLite
  and PostgreSQL they run as the same statements in plain SQL
  (:mod:`ecotune.storage._plain_sql`: the same rows, Optuna's locks and errors); where
  the database refuses one for a reason of its own, Optuna's own write runs instead.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ecotune.storage import _plain_sql as plain_sql
from ecotune.storage._bulk_read import BulkReadRDBStorage

__all__ = ["PerTrialRDBStorage", "heartbeat_follows"]

_local = threading.local()

#: Running trials kept per storage object: ``ask`` and ``tell`` come in pairs, so a few
#: are plenty (a trial created and never told, by a loop of one's own, only waits here
#: until pushed out; its reads then go to the database).
_KEEP_CREATED = 8


@contextlib.contextmanager
def heartbeat_follows() -> Iterator[None]:
    """Trials created in this thread inside the block get their heartbeat thread at once
    (``study.optimize`` starts it right after ``ask``): their first heartbeat is written
    as they are created. The caller fails dead trials itself: Optuna's look for stale
    trials before each trial is skipped inside the block."""
    before = getattr(_local, "heartbeat_follows", False)
    _local.heartbeat_follows = True
    try:
        yield
    finally:
        _local.heartbeat_follows = before


def _json_copy(value: Any) -> Any:
    """A copy of JSON-like ``value`` (dicts, lists, scalars), as deep as ``deepcopy``'s
    and a few times faster: it keeps no memo, and attributes hold no shared parts."""
    if type(value) is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_json_copy(v) for v in value]
    return value


def _copy(trial: FrozenTrial) -> FrozenTrial:
    """A copy of a running trial's mirror that no caller's change reaches: its own
    containers and attribute values (21 us a copy of a trial's attributes in a tight
    loop, against 70 us for ``deepcopy``; the distributions, which Optuna never changes,
    are shared)."""
    copied = copy.copy(trial)
    copied._params = dict(trial._params)
    copied._distributions = dict(trial._distributions)
    copied._user_attrs = _json_copy(trial._user_attrs)
    copied._system_attrs = _json_copy(trial._system_attrs)
    copied.intermediate_values = dict(trial.intermediate_values)
    copied._values = None if trial._values is None else list(trial._values)
    return copied


def _as_stored(value: Any) -> Any:
    """``value`` as reading it back from the database gives it (JSON: tuples are lists,
    keys are strings)."""
    return json.loads(json.dumps(value))


class PerTrialRDBStorage(BulkReadRDBStorage):
    """:class:`~ecotune.storage.BulkReadRDBStorage` that serves the reads of a running
    trial it created from its own copy and writes the first heartbeat with the trial
    (see the module's docstring).

    Example:
        >>> import optuna
        >>> storage = PerTrialRDBStorage("sqlite:///:memory:")
        >>> study = optuna.create_study(storage=storage)
        >>> trial = study.ask()
        >>> trial.set_user_attr("seen", [1, 2])
        >>> frozen = storage.get_trial(trial._trial_id)  # from the copy: no round trip
        >>> frozen.state.name, frozen.user_attrs
        ('RUNNING', {'seen': [1, 2]})
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (creating thread, trial id) -> the running trial as the database holds it (with
        #: the attributes it holds for its finished state).
        self._running: dict[tuple[int, int], FrozenTrial] = {}
        self._beat_at_creation: set[int] = set()
        #: Trial id -> user attributes (name -> JSON text) its finished state will write.
        self._held: dict[int, dict[str, str]] = {}
        #: Trial id -> the trial as this object finished it (state, values, every write),
        #: until the trial cache's next sync reads it (_told_trials).
        self._told: dict[int, FrozenTrial] = {}
        self._running_lock = threading.Lock()
        #: Optuna's per-trial writes as plain SQL (:mod:`ecotune.storage._plain_sql`).
        self._plain = plain_sql.supported(self.engine)

    def _plain_or_none(self, write: Callable[[], Any]) -> Any:
        """``write()``; None where the database refused it for a reason of its own (a
        lock timeout, a lost connection): the caller then runs Optuna's own write, with
        its retries and its errors. Optuna's errors (a missing row, a finished trial)
        come out as they are."""
        from sqlalchemy import exc

        try:
            return write()
        except exc.SQLAlchemyError:
            return None

    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        frozen = None
        if template_trial is None and self._plain:
            beat = self.heartbeat_interval is not None \
                and getattr(_local, "heartbeat_follows", False)
            frozen = self._plain_or_none(lambda: plain_sql.create_trial(
                self.engine, study_id, beat))
            if frozen is not None and beat:
                self._beat_at_creation.add(frozen._trial_id)
        if frozen is None:
            frozen = super()._create_new_trial(study_id, template_trial)
        if template_trial is None:  # ask(): the trial is read back next, in this thread
            with self._running_lock:
                self._running[(threading.get_ident(), frozen._trial_id)] = _copy(frozen)
                while len(self._running) > _KEEP_CREATED:
                    del self._running[next(iter(self._running))]
        return frozen

    def _get_prepared_new_trial(self, study_id: int, template_trial: FrozenTrial | None,
                                session: Any) -> Any:
        trial = super()._get_prepared_new_trial(study_id, template_trial, session)
        if template_trial is None and self.heartbeat_interval is not None \
                and getattr(_local, "heartbeat_follows", False):
            from optuna.storages._rdb import models

            # The column's default is the database's current time, as the thread's beat.
            session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
            self._beat_at_creation.add(trial.trial_id)
        return trial

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._running_lock:
            running = self._running.get((threading.get_ident(), trial_id))
            if running is not None:
                return _copy(running)
            held = dict(self._held.get(trial_id, {}))
        trial = super().get_trial(trial_id)
        if held:  # written with its state, to come: this process sees them already
            trial.user_attrs.update({k: json.loads(v) for k, v in held.items()})
        return trial

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        if self._plain:
            found = self._plain_or_none(lambda: plain_sql.trial_id_of_number(
                self.engine, study_id, trial_number))
            if found is not None:
                return found
        return super().get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def record_heartbeat(self, trial_id: int) -> None:
        if trial_id in self._beat_at_creation:  # the first beat, written at creation
            self._beat_at_creation.discard(trial_id)
            return
        super().record_heartbeat(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if getattr(_local, "heartbeat_follows", False):
            return []  # an ecotune worker: it fails dead trials itself
        return super()._get_stale_trial_ids(study_id)

    # -- writes to a running trial: applied to its copy once they succeed ---------------

    def _mirrored(self, trial_id: int, write: Callable[[], Any],
                  apply: Callable[[FrozenTrial], None]) -> Any:
        self._write_held(trial_id)  # in the order they were made
        try:
            result = write()
        except BaseException:
            self._forget(trial_id)  # the database's state is not known here: read it
            raise
        self._apply(trial_id, apply)
        return result

    def _apply(self, trial_id: int, apply: Callable[[FrozenTrial], None]) -> None:
        with self._running_lock:
            for (_, running_id), running in self._running.items():
                if running_id == trial_id:
                    apply(running)

    def _forget(self, trial_id: int) -> None:
        with self._running_lock:
            for key in [k for k in self._running if k[1] == trial_id]:
                del self._running[key]

    def wrote_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """``attrs`` were written to the trial past this object's methods (one
        transaction of :func:`~ecotune.storage.set_user_attrs`, with the attributes the
        trial held, which it read from :meth:`held_user_attrs`): the copy follows."""
        with self._running_lock:
            self._held.pop(trial_id, None)
        self._apply(trial_id, lambda t: t.user_attrs.update(_as_stored(dict(attrs))))

    def forget_trial(self, trial_id: int) -> None:
        """A write to the trial past this object's methods failed: its reads go to the
        database."""
        self._forget(trial_id)

    # -- attributes held for the transaction of the trial's finished state -------------

    def hold_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> bool:
        """Keep ``attrs`` for the transaction that writes the trial's finished state
        (:func:`~ecotune.storage.set_user_attrs` with ``with_finished_state``); any other
        write to the trial through this object writes them first. The trial's reads in
        this process see them at once. False where this storage writes that state
        through Optuna's ORM: the caller writes them now."""
        if not self._plain:
            return False
        encoded = {key: json.dumps(value) for key, value in attrs.items()}
        with self._running_lock:
            self._held.setdefault(trial_id, {}).update(encoded)
        self._apply(trial_id, lambda t: t.user_attrs.update(
            {k: json.loads(v) for k, v in encoded.items()}))
        return True

    def held_user_attrs(self, trial_id: int) -> dict[str, str]:
        """The attributes (name -> JSON text) ``trial_id`` holds for its finished state."""
        with self._running_lock:
            return dict(self._held.get(trial_id, {}))

    def _take_held(self, trial_id: int) -> dict[str, str]:
        with self._running_lock:
            return self._held.pop(trial_id, None) or {}

    def _write_held(self, trial_id: int, held: dict[str, str] | None = None) -> None:
        """Write what the trial held (``held``, or all it holds), in a transaction of its
        own: another write to the trial comes first, or its state goes Optuna's way."""
        held = self._take_held(trial_id) if held is None else held
        if not held:
            return
        if self._plain_or_none(lambda: plain_sql.set_user_attrs(self, trial_id, held)
                               or True) is None:
            for key, value_json in held.items():  # refused: Optuna's own writes
                super().set_trial_user_attr(trial_id, key, json.loads(value_json))

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: Any, *args: Any, **kwargs: Any) -> None:
        def apply(trial: FrozenTrial) -> None:
            trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            trial.distributions[param_name] = distribution

        def write() -> None:
            if len(args) + len(kwargs) == 1 and self._plain and self._plain_or_none(
                    lambda: plain_sql.set_param(
                        self, trial_id, param_name, param_value_internal, distribution,
                        *args, **kwargs) or True):
                return
            super(PerTrialRDBStorage, self)._set_trial_param(
                trial_id, param_name, param_value_internal, distribution, *args, **kwargs)

        self._mirrored(trial_id, write, apply)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        with self._running_lock:
            running = self._running.get((threading.get_ident(), trial_id))
        self._forget(trial_id)  # finished (or failed to be): the cache serves it from here
        self._beat_at_creation.discard(trial_id)
        held = self._take_held(trial_id)
        if self._plain and state.is_finished():
            done = self._plain_or_none(lambda: plain_sql.set_finished_state_values(
                self, trial_id, state, values, held))
            if done and running is not None:  # every write to it known: the sync's copy
                self._remember_told(running, state, values)
            elif done is False:  # rolled back with the state, which stays as it was
                self._write_held(trial_id, held)
            if done is not None:
                return done
        self._write_held(trial_id, held)
        return super().set_trial_state_values(trial_id, state, values)

    def _remember_told(self, running: FrozenTrial, state: TrialState,
                       values: Sequence[float] | None) -> None:
        running.state = state
        running._values = [float(v) for v in values] if values else None
        with self._running_lock:
            self._told[running._trial_id] = running
            while len(self._told) > _KEEP_CREATED:
                del self._told[next(iter(self._told))]

    def _told_trials(self, rows: Sequence[Any]) -> dict[int, FrozenTrial] | None:
        # The trial cache's sync after a `tell` reads the trial just told: as stored, it
        # is the copy plus its state and values, and its child tables need no read.
        with self._running_lock:
            if not all(self._told.get(row[0]) is not None
                       and self._told[row[0]].state == row[2] for row in rows):
                return None
            return {row[0]: self._told.pop(row[0]) for row in rows}

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        def apply(trial: FrozenTrial) -> None:
            trial.intermediate_values[step] = float(intermediate_value)

        self._mirrored(trial_id, lambda: super(PerTrialRDBStorage, self)
                       .set_trial_intermediate_value(trial_id, step, intermediate_value),
                       apply)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._mirrored(trial_id, lambda: super(PerTrialRDBStorage, self)
                       .set_trial_user_attr(trial_id, key, value),
                       lambda t: t.user_attrs.__setitem__(key, _as_stored(value)))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        def write() -> None:
            if self._plain and self._plain_or_none(lambda: plain_sql.set_system_attr(
                    self, trial_id, key, value) or True):
                return
            super(PerTrialRDBStorage, self).set_trial_system_attr(trial_id, key, value)

        self._mirrored(trial_id, write,
                       lambda t: t.system_attrs.__setitem__(key, _as_stored(value)))
