"""Why trials fail, recorded in one place: :func:`record_failure` for an exception in a
trial (every path that runs a trial calls it), :func:`fail_dead_trials` for the trials of
workers that died, so that a restarted run does not wait on them.

Optuna's own ``fail_stale_trials`` fails a RUNNING trial only once it has a heartbeat
that is older than the grace period. A worker killed after its trial was created but
before the trial's first heartbeat (a busy machine makes that window wide) leaves a trial
with no heartbeat at all, which Optuna never fails and which would count towards the
study's trial target forever. :func:`fail_dead_trials` treats the trial's creation as its
first sign of life: a RUNNING trial whose newest heartbeat, or whose start where it has
none, is older than the grace period ends FAIL, with the reason in ``fail_reason``.

A worker looks when it starts and then before a trial once a heartbeat interval has
passed since the last look at the study through the same storage object
(:class:`DeadTrialCheck`; a worker started on a storage object that looked less than an
interval ago waits for the interval's end), instead of Optuna's look before every trial
(two statements a trial, skipped inside :func:`ecotune.storage.heartbeat_follows`): a
dead worker's trial is failed at most one interval later than Optuna would, well within
the grace period it waited anyway. A new process, a restarted run, looks at once.

Only relational storage has heartbeats (journal and in-memory storage are left alone).
"""

from __future__ import annotations

import datetime
import threading
import time
import warnings
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

from ecotune.names import ATTR_FAIL_REASON
from ecotune.storage import scrub

__all__ = ["record_failure", "fail_dead_trials", "DeadTrialCheck", "DEAD_WORKER_REASON",
           "INTERRUPTED_REASON"]

INTERRUPTED_REASON = "interrupted (SIGINT/SIGTERM): the trial was stopped"
DEAD_WORKER_REASON = ("worker lost: no heartbeat for {grace_s} s (the process was killed or "
                      "its machine lost); the next worker to start a trial failed it")

# Trials and heartbeats by study, straight from Optuna's schema (tables `trials` and
# `trial_heartbeats`): the RDB storage has no public query for trials without a heartbeat.
_RUNNING_SQL = """
SELECT t.trial_id, t.datetime_start, h.heartbeat
FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
WHERE t.study_id = :study_id AND t.state = 'RUNNING'
"""


def record_failure(trial: optuna.trial.BaseTrial, err: BaseException,
                   storage_url: str = "") -> None:
    """Say on ``trial`` why it failed (``fail_reason``), once: the innermost place that
    saw the error wins (a measurement window inside a worker, say). The password of
    ``storage_url``, or of any URL the error quotes, is hidden.

    Example:
        >>> import optuna
        >>> trial = optuna.create_study().ask()
        >>> record_failure(trial, MemoryError("cannot allocate 4 GiB"))
        >>> record_failure(trial, RuntimeError("later"))
        >>> trial.user_attrs["fail_reason"]
        'MemoryError: cannot allocate 4 GiB'
    """
    if ATTR_FAIL_REASON in trial.user_attrs:
        return
    reason = (INTERRUPTED_REASON if isinstance(err, KeyboardInterrupt)
              else scrub(f"{type(err).__name__}: {err}", storage_url))
    trial.set_user_attr(ATTR_FAIL_REASON, reason)


def _rdb(study: optuna.Study):
    import optuna

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna's trial cache wraps the RDB
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    if backend.heartbeat_interval is None:
        return None
    return backend


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial of ``study`` that has shown no sign of life (heartbeat or
    creation) for longer than the storage's grace period; return their numbers.

    Safe with live workers: a live trial beats every heartbeat interval, and the grace
    period is longer than the interval. Another process failing the same trial first is
    not an error.
    """
    import optuna
    from sqlalchemy import func, text

    rdb = _rdb(study)
    if rdb is None:
        return []
    grace_s = rdb.grace_period or 2 * rdb.heartbeat_interval
    grace = datetime.timedelta(seconds=grace_s)
    with rdb.engine.connect() as conn:
        db_now = conn.execute(func.now().select()).scalar()
        rows = conn.execute(text(_RUNNING_SQL), {"study_id": study._study_id}).all()
    # Heartbeats are written with the database's clock, starts with the worker's clock.
    db_now = _naive(db_now)
    local_now = datetime.datetime.now()
    dead = [trial_id for trial_id, started, heartbeat in rows
            if (db_now - _naive(heartbeat) > grace if heartbeat is not None
                else started is None or local_now - _naive(started) > grace)]
    failed = []
    for trial_id in dead:
        try:
            study._storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON,
                                               DEAD_WORKER_REASON.format(grace_s=grace_s))
            if study._storage.set_trial_state_values(trial_id,
                                                     state=optuna.trial.TrialState.FAIL):
                failed.append(study._storage.get_trial_number_from_id(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    if failed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = rdb.get_heartbeat_stale_trial_callback()
        for number in failed if callback is not None else ():
            callback(study, study.trials[number])
    return failed


class DeadTrialCheck:
    """:func:`fail_dead_trials` on ``study`` at the first call for its storage object,
    then at a call once the storage's heartbeat interval has passed since the last look
    at the study through that object, by whichever check looked (every ``run_worker``
    call makes a check: a loop of calls on one opened study, one trial each, looks once
    an interval rather than before every trial); a call while another thread looks does
    nothing. Nothing at all on storage without heartbeats."""

    #: Storage object -> {study id: when it was last looked at (time.monotonic())}.
    _last_look_s: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._rdb = _rdb(study)
        self._interval_s = None if self._rdb is None else self._rdb.heartbeat_interval
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self._interval_s is None or not self._lock.acquire(blocking=False):
            return
        try:
            looks = self._last_look_s.setdefault(self._rdb, {})
            now_s = time.monotonic()
            last_s = looks.get(self._study._study_id)
            if last_s is None or now_s - last_s >= self._interval_s:
                looks[self._study._study_id] = now_s
                fail_dead_trials(self._study)
        finally:
            self._lock.release()


def _naive(value) -> datetime.datetime:
    """A datetime from the database as a naive one (PostgreSQL answers aware, SQLite a
    string or a naive datetime)."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=None)
