"""scikit-learn's bundled digits: 1,797 8x8 grey images of 10 digits; no network."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ecotune.data._splits import DataSplits, stratified_split

__all__ = ["load_digits_splits"]

#: Pixel values in the bundled set run 0..16.
_MAX_PIXEL = 16.0


def load_digits_splits(val_fraction: float = 0.2, test_fraction: float = 0.2) -> DataSplits:
    """Digits as (N, 1, 8, 8) tensors scaled to [0, 1], split with a fixed seed.

    Example:
        >>> splits = load_digits_splits()
        >>> splits.input_shape, splits.n_classes, sum(splits.sizes().values())
        ((1, 8, 8), 10, 1797)
    """
    table = _digits_table()
    x = (table[:, :-1] / _MAX_PIXEL).reshape(-1, 1, 8, 8)
    y = table[:, -1].astype(int)
    return stratified_split("digits", x, y, 10, val_fraction, test_fraction)


def _digits_table() -> np.ndarray:
    """The bundled file as ``sklearn.datasets.load_digits`` reads it (64 pixels and the
    label a row), found without importing scikit-learn (~2 CPU-s of scipy and pandas
    that a worker would pay for a 540 kB file; tests/test_data.py compares both)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is not installed (it ships the digits)")
    path = Path(next(iter(spec.submodule_search_locations)), "datasets", "data",
                "digits.csv.gz")
    with gzip.open(path, mode="rt", encoding="utf-8") as text:
        return np.loadtxt(text, delimiter=",")
