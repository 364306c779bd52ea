"""Trials read in bulk whose user attributes are decoded only when something reads them.

An ecotune trial stores about a dozen user attributes, a learning curve and a per-layer
profile among them: at 10,000 trials decoding their JSON is most of the bulk read, and a
worker joining the study needs none of it (its sampler reads parameters, values and
constraints; the study's energy spent reads two numbers per trial, :func:`user_attr`).
So :class:`StoredTrial` keeps the stored JSON text and decodes it the first time its
``user_attrs`` are read, together with the trials read alongside it (a chunk of
:data:`CHUNK_TRIALS`): one ``json.loads`` per chunk runs at the C decoder's speed and
shares one string per distinct key across the chunk, as a report reading every trial
needs. Until then a trial is what a ``FrozenTrial`` is: equality, hashing, ``repr``,
copies and pickles decode it first, and nothing else reads ``_user_attrs`` directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial

__all__ = ["StoredTrial", "RawUserAttrs", "user_attr", "CHUNK_TRIALS"]

#: Trials decoded together the first time one of them is read.
CHUNK_TRIALS = 256

#: (key, stored JSON text) pairs of one trial, in the order they were stored.
RawUserAttrs = Sequence[tuple[str, str]]

_LOCK = threading.Lock()  # trials in threads (n_jobs) share the cached trial objects


class _Chunk:
    """The undecoded user attributes of up to :data:`CHUNK_TRIALS` trials, by trial id."""

    __slots__ = ("raw", "decoded")

    def __init__(self) -> None:
        self.raw: dict[int, RawUserAttrs] = {}
        self.decoded: dict[int, dict[str, Any]] | None = None

    def user_attrs(self, trial_id: int) -> dict[str, Any]:
        if self.decoded is None:
            ids = list(self.raw)
            # One array of the chunk's values, each trial's a row: one C-speed decode, and
            # the decoder shares the strings of repeated keys inside it.
            rows = json.loads("[" + ",".join(
                "[" + ",".join(value for _, value in self.raw[i]) + "]" for i in ids) + "]")
            self.decoded = {i: dict(zip((key for key, _ in self.raw[i]), row))
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
        return super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.copy, copy.deepcopy and pickle all come here: they copy a decoded trial.
        self._decode()
        return super().__reduce_ex__(protocol)


def stored_trials(fields: Sequence[dict[str, Any]],
                  raw_user_attrs: Sequence[RawUserAttrs]) -> list[StoredTrial]:
    """Trials from ``FrozenTrial`` keyword arguments (``user_attrs`` left out) and each
    trial's stored user attributes, chunked for decoding.

    Example:
        >>> import optuna
        >>> [t] = stored_trials([dict(number=0, state=optuna.trial.TrialState.COMPLETE,
        ...     value=None, values=[1.0], datetime_start=None, datetime_complete=None,
        ...     params={}, distributions={}, system_attrs={}, intermediate_values={},
        ...     trial_id=7)], [[("energy_j", "2.5"), ("training", '{"epochs": 3}')]])
        >>> user_attr(t, "energy_j"), t.user_attrs
        (2.5, {'energy_j': 2.5, 'training': {'epochs': 3}})
    """
    trials = []
    chunk = _Chunk()
    for kwargs, raw in zip(fields, raw_user_attrs, strict=True):
        trial = StoredTrial(user_attrs={}, **kwargs)
        if raw:
            if len(chunk.raw) == CHUNK_TRIALS:
                chunk = _Chunk()
            chunk.raw[trial._trial_id] = raw
            trial.__dict__["_chunk"] = chunk
        trials.append(trial)
    return trials


def user_attr(trial: FrozenTrial, key: str, default: Any = None) -> Any:
    """``trial.user_attrs.get(key, default)``, decoding only that attribute where the trial
    came from the bulk read and nothing has read its user attributes yet (the study's
    energy spent reads two numbers from each of 10,000 trials).

    Example:
        >>> import optuna
        >>> user_attr(optuna.trial.create_trial(value=1.0, user_attrs={"e": 2}), "e")
        2
    """
    chunk = trial.__dict__.get("_chunk")
    if chunk is not None:
        with _LOCK:
            raw = chunk.raw.get(trial._trial_id)
        if raw is not None:  # None: decoded meanwhile, read below
            for stored_key, value in raw:
                if stored_key == key:
                    return json.loads(value)
            return default
    return trial.user_attrs.get(key, default)
