"""Trials read in bulk whose user attributes are read and decoded only when something
reads them.

An ecotune trial stores about a dozen user attributes, a learning curve and a per-layer
profile among them: at 10,000 trials reading and decoding them is most of the bulk read,
and a worker joining the study needs next to none of them (its sampler reads parameters,
values and constraints; the study's energy spent reads two numbers per trial,
:func:`user_attr`). So a :class:`StoredTrial` holds only the attribute rows its read
fetched (all of an unfinished trial's; of a finished one's, those named in
:data:`~ecotune.storage.BulkReadRDBStorage.READ_WITH_TRIAL`) as stored JSON text, and
the first time its ``user_attrs`` are read it fetches the rest and decodes them together
with the trials read alongside it (a chunk of :data:`CHUNK_TRIALS`): one query and one
``json.loads`` per chunk, which runs at the C decoder's speed and shares one string per
distinct key across the chunk, as a report reading every trial needs. Fetching later
gives what fetching at once would have: Optuna never changes a finished trial's
attributes (it refuses to), and a chunk whose trials are gone from storage raises
``KeyError`` instead of answering empty. Until then a trial is what a ``FrozenTrial``
is: equality, hashing, ``repr`` and copies (copy, deepcopy, serialization) decode it
first, and nothing else reads ``_user_attrs`` directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

from optuna.trial import FrozenTrial

__all__ = ["StoredTrial", "AttrRow", "stored_trials", "user_attr", "CHUNK_TRIALS"]

#: Trials fetched and decoded together the first time one of them is read.
CHUNK_TRIALS = 512

#: One stored user attribute: (its row id, key, JSON text); a trial's, by row id, are in
#: the order it set them.
AttrRow = tuple[int, str, str]

#: Fetches the rows a read left out, of the given trial ids (KeyError: a trial is gone).
Fetch = Callable[[list[int]], dict[int, list[AttrRow]]]

_LOCK = threading.Lock()  # trials in threads (n_jobs) share the cached trial objects


class _Chunk:
    """The undecoded user attributes of up to :data:`CHUNK_TRIALS` trials, by trial id:
    the rows the read fetched, and where it left some out, how to fetch them and the keys
    it fetched from every trial (``known``)."""

    __slots__ = ("raw", "decoded", "fetch", "known")

    def __init__(self, fetch: Fetch | None, known: Collection[str]) -> None:
        self.raw: dict[int, list[AttrRow]] = {}
        self.decoded: dict[int, dict[str, Any]] | None = None
        self.fetch = fetch
        self.known = known

    def user_attrs(self, trial_id: int) -> dict[str, Any]:
        if self.decoded is None:
            ids = list(self.raw)
            if self.fetch is not None:
                for i, rows in self.fetch(ids).items():
                    self.raw[i] = sorted(self.raw[i] + rows)  # by row id: the stored order
            # One array of the chunk's values, each trial's a row: one C-speed decode, and
            # the decoder shares the strings of repeated keys inside it.
            rows = json.loads("[" + ",".join(
                "[" + ",".join(value for _, _, value in self.raw[i]) + "]" for i in ids)
                + "]")
            self.decoded = {i: dict(zip((key for _, key, _ in self.raw[i]), row))
                            for i, row in zip(ids, rows)}
            self.raw = {}
        return self.decoded.pop(trial_id)


class StoredTrial(FrozenTrial):
    """A ``FrozenTrial`` whose user attributes are decoded when first read.

    Build them with :func:`stored_trials`; everything else is ``FrozenTrial``'s.
    """

    def _decode(self) -> None:
        chunk = self.__dict__.get("_chunk")
        if chunk is None:
            return
        with _LOCK:
            if "_chunk" in self.__dict__:  # another thread may have just done it
                self._user_attrs = chunk.user_attrs(self._trial_id)
                del self.__dict__["_chunk"]

    @property
    def user_attrs(self) -> dict[str, Any]:
        self._decode()
        return self._user_attrs

    @user_attrs.setter
    def user_attrs(self, value: dict[str, Any]) -> None:
        self._decode()
        self._user_attrs = value

    def set_user_attr(self, key: str, value: Any) -> None:
        self._decode()
        super().set_user_attr(key, value)

    def __eq__(self, other: Any) -> bool:
        self._decode()
        if isinstance(other, StoredTrial):
            other._decode()
        return super().__eq__(other)

    def __hash__(self) -> int:
        self._decode()
        return super().__hash__()

    def __repr__(self) -> str:
        self._decode()
        # Shown as what it is to its readers (logs, tracebacks): a FrozenTrial.
        return FrozenTrial.__name__ + super().__repr__().removeprefix(type(self).__name__)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.copy, copy.deepcopy and serialization all come here: they copy a decoded trial.
        self._decode()
        return super().__reduce_ex__(protocol)


def stored_trials(fields: Sequence[dict[str, Any]], rows: Sequence[list[AttrRow]],
                  partial: Sequence[bool] = (), fetch: Fetch | None = None,
                  known: Collection[str] = ()) -> list[StoredTrial]:
    """Trials from ``FrozenTrial`` keyword arguments (``user_attrs`` left out) and each
    trial's stored user-attribute rows; where ``partial[i]``, trial i's rows are only
    those with a key in ``known`` and ``fetch`` reads the rest when first needed.

    Example:
        >>> import optuna
        >>> [t] = stored_trials([dict(number=0, state=optuna.trial.TrialState.COMPLETE,
        ...     value=None, values=[1.0], datetime_start=None, datetime_complete=None,
        ...     params={}, distributions={}, system_attrs={}, intermediate_values={},
        ...     trial_id=7)], [[(1, "energy_j", "2.5"), (2, "training", '{"epochs": 3}')]])
        >>> user_attr(t, "energy_j"), t.user_attrs
        (2.5, {'energy_j': 2.5, 'training': {'epochs': 3}})
    """
    trials = []
    chunks = {False: _Chunk(None, ()), True: _Chunk(fetch, known)}
    partial = partial or [False] * len(fields)
    for kwargs, trial_rows, part in zip(fields, rows, partial, strict=True):
        trial = StoredTrial(user_attrs={}, **kwargs)
        if trial_rows or part:
            if len(chunks[part].raw) == CHUNK_TRIALS:
                chunks[part] = _Chunk(fetch, known) if part else _Chunk(None, ())
            chunks[part].raw[trial._trial_id] = list(trial_rows)
            trial.__dict__["_chunk"] = chunks[part]
        trials.append(trial)
    return trials


def user_attr(trial: FrozenTrial, key: str, default: Any = None) -> Any:
    """``trial.user_attrs.get(key, default)``; where the trial came from the bulk read, its
    attributes are not decoded yet and its read fetched ``key``, only that attribute is
    decoded (the study's energy spent reads two numbers from each of 10,000 trials).

    Example:
        >>> import optuna
        >>> user_attr(optuna.trial.create_trial(value=1.0, user_attrs={"e": 2}), "e")
        2
    """
    chunk = trial.__dict__.get("_chunk")
    if chunk is not None and (chunk.fetch is None or key in chunk.known):
        with _LOCK:
            rows = chunk.raw.get(trial._trial_id)
        if rows is not None:  # None: decoded meanwhile, read below
            for _, stored_key, value in rows:
                if stored_key == key:
                    return json.loads(value)
            return default
    return trial.user_attrs.get(key, default)
