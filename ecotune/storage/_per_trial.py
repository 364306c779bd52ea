"""Relational storage that spends fewer round trips on each trial ecotune runs.

What Optuna does for every trial of ``study.optimize`` on relational storage includes two
round trips that carry nothing new:

- ``study.ask`` creates the trial, then reads it straight back (``Trial.__init__``): the
  trial this process created a moment ago, in this thread, with nothing written to it
  since. :class:`PerTrialRDBStorage` hands back a copy of what it created instead.
- the heartbeat thread writes the trial's first heartbeat, in a transaction of its own,
  the moment the trial starts. Inside :func:`heartbeat_follows` (ecotune's workers run
  each trial in it) the first heartbeat row is written in the transaction that creates
  the trial instead, with the database's clock as Optuna's is, and the thread's first
  beat is skipped; its later beats are Optuna's own. A worker that dies at once leaves
  the same row as before: its trial is failed once the heartbeat is older than the grace
  period. Outside that block (``study.ask()`` in a loop of one's own, where no heartbeat
  thread runs) creation writes no heartbeat, as Optuna's does.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

from optuna.trial import FrozenTrial

from ecotune.storage._bulk_read import BulkReadRDBStorage

__all__ = ["PerTrialRDBStorage", "heartbeat_follows"]

_local = threading.local()

#: Created trials kept for the read that follows: ``ask`` reads its trial at once, so a
#: few are plenty (a trial created without being read, by a direct storage call, only
#: waits here until pushed out).
_KEEP_CREATED = 8


@contextlib.contextmanager
def heartbeat_follows() -> Iterator[None]:
    """Trials created in this thread inside the block get their heartbeat thread at once
    (``study.optimize`` starts it right after ``ask``): their first heartbeat is written
    as they are created."""
    before = getattr(_local, "heartbeat_follows", False)
    _local.heartbeat_follows = True
    try:
        yield
    finally:
        _local.heartbeat_follows = before


class PerTrialRDBStorage(BulkReadRDBStorage):
    """:class:`~ecotune.storage.BulkReadRDBStorage` that serves the read of a trial it
    just created from memory and writes the first heartbeat with the trial (see the
    module's docstring).

    Example:
        >>> import optuna
        >>> storage = PerTrialRDBStorage("sqlite:///:memory:")
        >>> study = optuna.create_study(storage=storage)
        >>> trial = study.ask()
        >>> trial.number, storage.get_trial(trial._trial_id).state.name
        (0, 'RUNNING')
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._created: dict[tuple[int, int], FrozenTrial] = {}
        self._beat_at_creation: set[int] = set()
        self._created_lock = threading.Lock()

    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        frozen = super()._create_new_trial(study_id, template_trial)
        if template_trial is None:  # ask(): the trial is read back next, in this thread
            with self._created_lock:
                self._created[(threading.get_ident(), frozen._trial_id)] = copy.deepcopy(
                    frozen)
                while len(self._created) > _KEEP_CREATED:
                    del self._created[next(iter(self._created))]
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
        with self._created_lock:
            created = self._created.pop((threading.get_ident(), trial_id), None)
        if created is not None:
            return created
        return super().get_trial(trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        if trial_id in self._beat_at_creation:  # the first beat, written at creation
            self._beat_at_creation.discard(trial_id)
            return
        super().record_heartbeat(trial_id)

    def _forget_created(self, trial_id: int) -> None:
        with self._created_lock:
            for key in [k for k in self._created if k[1] == trial_id]:
                del self._created[key]

    # Any write to a created trial before its read: the read goes to the database.
    def set_trial_param(self, trial_id: int, *args: Any, **kwargs: Any) -> None:
        self._forget_created(trial_id)
        super().set_trial_param(trial_id, *args, **kwargs)

    def _set_trial_param(self, trial_id: int, *args: Any, **kwargs: Any) -> None:
        self._forget_created(trial_id)
        super()._set_trial_param(trial_id, *args, **kwargs)

    def set_trial_state_values(self, trial_id: int, *args: Any, **kwargs: Any) -> bool:
        self._forget_created(trial_id)
        self._beat_at_creation.discard(trial_id)
        return super().set_trial_state_values(trial_id, *args, **kwargs)

    def set_trial_intermediate_value(self, trial_id: int, *args: Any, **kwargs: Any) -> None:
        self._forget_created(trial_id)
        super().set_trial_intermediate_value(trial_id, *args, **kwargs)

    def set_trial_user_attr(self, trial_id: int, *args: Any, **kwargs: Any) -> None:
        self._forget_created(trial_id)
        super().set_trial_user_attr(trial_id, *args, **kwargs)

    def set_trial_system_attr(self, trial_id: int, *args: Any, **kwargs: Any) -> None:
        self._forget_created(trial_id)
        super().set_trial_system_attr(trial_id, *args, **kwargs)
