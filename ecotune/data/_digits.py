"""scikit-learn's bundled digits: 1,797 8x8 grey images of 10 digits; no network."""

from __future__ import annotations

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
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / _MAX_PIXEL).reshape(-1, 1, 8, 8)
    return stratified_split("digits", x, bunch.target, 10, val_fraction, test_fraction)
