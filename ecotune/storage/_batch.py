"""Write a trial's user attributes in one storage transaction where the storage allows it.

Optuna's public API writes one attribute per call, and on relational storage each call is
a transaction of its own (a few ms on SQLite, a round trip on PostgreSQL): an ecotune
trial records about fifteen. Optuna's relational storage writes each attribute through a
helper that leaves the commit to its caller; :func:`set_user_attrs` calls it for every
attribute inside one session, so they commit together (all or none). Any other storage,
or an Optuna whose relational storage lacks those helpers, gets the public calls, one per
attribute: the same rows either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

__all__ = ["set_user_attrs"]


def set_user_attrs(trial: optuna.trial.BaseTrial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr(key, value)`` for each of ``attrs``, in one transaction on
    relational storage.

    Example:
        >>> study = optuna.create_study(storage="sqlite:///:memory:")
        >>> trial = study.ask()
        >>> set_user_attrs(trial, {"energy_j": 1.5, "energy_meter": "cputime"})
        >>> study.trials[0].user_attrs == {"energy_j": 1.5, "energy_meter": "cputime"}
        True
    """
    if not attrs:
        return
    writer = _one_transaction(trial)
    if writer is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    writer(attrs)
    # What trial.set_user_attr also does: the trial's own view sees the new values.
    trial._cached_frozen_trial.user_attrs.update(attrs)


def _one_transaction(trial: optuna.trial.BaseTrial):
    """A function writing attributes of ``trial`` in one transaction, or None where the
    storage (or this Optuna) offers no way to."""
    if not isinstance(trial, optuna.Trial):
        return None
    storage = trial.storage
    # Optuna wraps relational storage in a cache that passes attribute writes through.
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        write_one = backend._set_trial_attr_without_commit
        scoped = backend.scoped_session
    except (ImportError, AttributeError):
        return None
    trial_id = trial._trial_id

    def write(attrs: Mapping[str, Any]) -> None:
        with _create_scoped_session(scoped, True) as session:
            for key, value in attrs.items():
                write_one(session, models.TrialUserAttributeModel, trial_id, key, value)

    return write
