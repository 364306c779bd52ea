"""Optuna's trial cache, with the look for waiting trials that ``study.ask`` makes before
every trial kept to the unfinished trials.

Optuna wraps relational storage in ``_CachedStorage`` (a study's trials, kept in the
process, synced before each read). ``study.ask`` asks it for the study's WAITING trials
(an enqueued trial is run first), and it answers by looking at every cached trial's
state: ~1 ms a trial at 10,000 stored trials, for a list that is almost always empty.
After its sync the cache knows which trials are unfinished (it keeps their ids to read
them again), and a trial in an unfinished state is always one of those: :class:`TrialCache`
answers a request for unfinished states from them alone. Every other read is Optuna's.
"""

from __future__ import annotations

import copy
from collections.abc import Container

import optuna
from optuna.storages import _CachedStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = ["TrialCache", "trial_cache"]

_UNFINISHED = frozenset({TrialState.WAITING, TrialState.RUNNING})


class TrialCache(_CachedStorage):
    """Optuna's ``_CachedStorage`` whose reads of trials in unfinished states only (the
    WAITING trials ``study.ask`` looks for) go through the unfinished trials, not the
    whole study. The same trials, in the same order (by number).

    Example:
        >>> storage = trial_cache(optuna.storages.RDBStorage("sqlite:///:memory:"))
        >>> study = optuna.create_study(storage=storage)
        >>> study.enqueue_trial({"x": 0.5})
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        >>> [t.params["x"] for t in study.trials][0]
        0.5
    """

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if states is None or any(s in states for s in TrialState if s not in _UNFINISHED):
            return super().get_all_trials(study_id, deepcopy, states)
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            study = self._studies[study_id]
            found = []
            for trial_id in study.unfinished_trial_ids:
                trial = study.trials[self._trial_id_to_study_id_and_number[trial_id][1]]
                if trial.state in states:
                    found.append(trial)
            found.sort(key=lambda t: t.number)
            return copy.deepcopy(found) if deepcopy else found


def trial_cache(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """``storage`` as a study uses it: relational storage in a :class:`TrialCache`
    (where Optuna would wrap it in its own cache), any other as it is."""
    if isinstance(storage, optuna.storages.RDBStorage):
        return TrialCache(storage)
    return storage
