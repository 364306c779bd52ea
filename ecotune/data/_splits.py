"""Tensors of a data set split three ways: train (fit), val (the search's accuracy), test.

The test split is never used for training or for any selection: its accuracy is recorded
beside the objectives, so the accuracy a user reads on the front is unbiased.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

__all__ = ["DataSplits", "stratified_split", "carve_validation"]


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Float32 inputs of shape (N, C, H, W) in [0, 1] and int64 labels for each split."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def limit_train(self, n: int | None, seed: int = 0) -> DataSplits:
        """A copy keeping a fixed random ``n`` of the training examples (None: all)."""
        if n is None or n >= len(self.y_train):
            return self
        keep = torch.randperm(len(self.y_train), generator=torch.Generator().manual_seed(seed))[:n]
        return dataclasses.replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep])


def _split(index: np.ndarray, y: np.ndarray, fraction: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, held_out)``: scikit-learn's ``train_test_split(index,
    test_size=fraction, random_state=seed, stratify=labels)`` (1.x), the same indices
    from the same seed, stratified when every class 0..max has two examples or more.

    Written out with numpy, not imported: scikit-learn's import costs ~2 CPU-s (scipy,
    pandas), which every worker process would pay for a split (tests/test_data.py
    compares both on random labels).
    """
    labels = y[index]
    n = len(index)
    n_test = math.ceil(fraction * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"a held-out fraction of {fraction} of {n} examples leaves an "
                         "empty split")
    rng = np.random.RandomState(seed)
    if np.bincount(labels).min() < 2:  # a class too small to stratify: a plain shuffle
        permutation = rng.permutation(n)
        return index[permutation[n_test:]], index[permutation[:n_test]]
    classes, label_index, counts = np.unique(labels, return_inverse=True,
                                             return_counts=True)
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"a stratified split of {n} examples into {n_train} and {n_test} "
                         f"needs at least {len(classes)} (one per class) in each")
    members = np.split(np.argsort(label_index, kind="stable"), np.cumsum(counts)[:-1])
    train_counts = _approximate_mode(counts, n_train, rng)
    test_counts = _approximate_mode(counts - train_counts, n_test, rng)
    train: list = []
    test: list = []
    for i in range(len(classes)):
        shuffled = members[i].take(rng.permutation(counts[i]), mode="clip")
        train.extend(shuffled[:train_counts[i]])
        test.extend(shuffled[train_counts[i]:train_counts[i] + test_counts[i]])
    return index[rng.permutation(train)], index[rng.permutation(test)]


def _approximate_mode(counts: np.ndarray, n_draws: int,
                      rng: np.random.RandomState) -> np.ndarray:
    """Examples per class for ``n_draws`` of them (scikit-learn's
    ``utils.extmath._approximate_mode``): each class's share rounded down, the rest
    given by largest remainder, ties broken at random."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            add = min(len(tied), need)
            floored[rng.choice(tied, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def stratified_split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
) -> DataSplits:
    """Split one pool ``x, y`` into train/val/test, each class in the same proportions.

    The split depends only on ``seed`` (fixed per data set), never on a trial.
    """
    rest, test = _split(np.arange(len(y)), y, test_fraction, seed)
    train, val = _split(rest, y, val_fraction / (1 - test_fraction), seed)
    return DataSplits(name, *_tensors(x[train], y[train]), *_tensors(x[val], y[val]),
                      *_tensors(x[test], y[test]), n_classes)


def carve_validation(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    val_fraction: float,
    seed: int = 0,
) -> DataSplits:
    """Keep a data set's original test split; carve the validation split from its train."""
    train, val = _split(np.arange(len(y_train)), y_train, val_fraction, seed)
    return DataSplits(name, *_tensors(x_train[train], y_train[train]),
                      *_tensors(x_train[val], y_train[val]), *_tensors(x_test, y_test),
                      n_classes)
