"""Follow a study's trials as they finish, reading only what changed.

What ``ecotune run`` does per trial besides training (count the trials under the claim
lock, add up the study's energy, keep the early stopper's front) must not grow with the
study. Optuna numbers a study's trials 0, 1, 2, ... as it creates them, never deletes
one, and never changes a finished one. So a reader that remembers the next number to
look at and the trials it last saw unfinished can find everything new with a few storage
reads: one per new or still-running trial, plus one probe for the next number. Every
process keeps its own cursor and derives its figures from storage alone, so they hold
with any number of workers sharing the storage, and nothing extra is written.
"""

from __future__ import annotations

import optuna

__all__ = ["TrialCursor", "count_from"]


def _storage_and_id(study: optuna.Study) -> tuple[optuna.storages.BaseStorage, int]:
    # Optuna exposes no public handle on a study's storage; its own integrations use these.
    return study._storage, study._study_id


def count_from(study: optuna.Study, known: int) -> int:
    """The number of trials ``study`` holds, given that it holds at least ``known``: probes
    trial numbers ``known``, ``known + 1``, ... until one does not exist.

    Example:
        >>> study = optuna.create_study()
        >>> for x in (1.0, 2.0, 3.0):
        ...     study.add_trial(optuna.trial.create_trial(value=x))
        >>> count_from(study, 1)
        3
    """
    storage, study_id = _storage_and_id(study)
    n = known
    while True:
        try:
            storage.get_trial_id_from_study_id_trial_number(study_id, n)
        except KeyError:
            return n
        n += 1


class TrialCursor:
    """Each :meth:`poll` returns the trials of ``study`` that finished since the last one.

    The first poll reads the whole study once (one bulk read; Optuna's cache of relational
    storage then keeps the finished trials); later polls read only new trials and those
    still unfinished at the previous poll, which :attr:`unfinished` holds.

    Example:
        >>> study = optuna.create_study()
        >>> cursor = TrialCursor(study)
        >>> study.add_trial(optuna.trial.create_trial(value=1.0))
        >>> running = study.ask()
        >>> [t.number for t in cursor.poll()], [t.number for t in cursor.unfinished]
        ([0], [1])
        >>> _ = study.tell(running, 2.0)
        >>> _ = study.ask()
        >>> [t.number for t in cursor.poll()], cursor.n_trials
        ([1], 3)
    """

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.unfinished: list[optuna.trial.FrozenTrial] = []
        self._next = 0  # the first trial number not yet seen
        self._started = False

    @property
    def n_trials(self) -> int:
        """Trials the study held at the last poll, in any state."""
        return self._next

    def poll(self) -> list[optuna.trial.FrozenTrial]:
        """The trials that finished (complete, failed or pruned) since the last poll, by
        number; unfinished ones are kept for the next poll."""
        storage, study_id = _storage_and_id(self.study)
        if not self._started:
            trials = storage.get_all_trials(study_id, deepcopy=False)
            self._next = max((t.number for t in trials), default=-1) + 1
            self._started = True
        else:
            ids = [t._trial_id for t in self.unfinished]
            n = count_from(self.study, self._next)
            ids += [storage.get_trial_id_from_study_id_trial_number(study_id, k)
                    for k in range(self._next, n)]
            self._next = n
            trials = [storage.get_trial(trial_id) for trial_id in ids]
        finished = sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number)
        self.unfinished = [t for t in trials if not t.state.is_finished()]
        return finished
