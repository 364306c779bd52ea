"""``load_data``: a data set by name, as in-memory tensors (cached per process)."""

from __future__ import annotations

import functools
from typing import Any

from ecotune import names
from ecotune.data._digits import load_digits_splits
from ecotune.data._fake import load_fake_splits
from ecotune.data._splits import DataSplits
from ecotune.data._vision import (
    load_cifar10_splits,
    load_fashion_mnist_splits,
    load_gtsrb_splits,
    load_mnist_splits,
)
from ecotune.names import check_implements

__all__ = ["DATASETS", "load_data"]

DATASETS = {
    "digits": load_digits_splits,
    "fake": load_fake_splits,
    "fashion_mnist": load_fashion_mnist_splits,
    "mnist": load_mnist_splits,
    "cifar10": load_cifar10_splits,
    "gtsrb": load_gtsrb_splits,
}
check_implements("data set", names.DATASETS, DATASETS)


def load_data(name: str, train_samples: int | None = None, **options: Any) -> DataSplits:
    """Load data set ``name`` with ``options`` (cached per process).

    Args:
        train_samples: keep only this many (fixed, random) training examples.

    Raises:
        ValueError: unknown data set name.
        DataNotFoundError: the files are not on disk (the message says where to put them).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    # Lists are not hashable; the cache key takes tuples.
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    return _cached(name, key).limit_train(train_samples)


@functools.lru_cache(maxsize=2)
def _cached(name: str, options: tuple) -> DataSplits:
    return DATASETS[name](**dict(options))
