"""Data sets of the built-in trainer, as in-memory tensors split train/val/test.

``load_data(name, **options)`` returns :class:`DataSplits`; results are cached per
process, so trials after the first do not reload. This layer knows nothing of Optuna.
"""

from __future__ import annotations

import functools
from typing import Any

from ecotune.data._digits import load_digits_splits
from ecotune.data._fake import load_fake_splits
from ecotune.data._splits import DataSplits, stratified_split

__all__ = ["DataSplits", "DATASETS", "load_data", "stratified_split"]

DATASETS = {
    "digits": load_digits_splits,
    "fake": load_fake_splits,
}


def load_data(name: str, **options: Any) -> DataSplits:
    """Load data set ``name`` with ``options`` (cached per process).

    Raises:
        ValueError: unknown data set name.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    # Lists are not hashable; the cache key takes tuples.
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return _cached(name, key)


@functools.lru_cache(maxsize=4)
def _cached(name: str, options: tuple) -> DataSplits:
    return DATASETS[name](**dict(options))
