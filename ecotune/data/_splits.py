"""Tensors of a data set split three ways: train (fit), val (the search's accuracy), test.

The test split is never used for training or for any selection: its accuracy is recorded
beside the objectives, so the accuracy a user reads on the front is unbiased.
"""

from __future__ import annotations

import dataclasses

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
    from sklearn.model_selection import train_test_split

    labels = y[index]
    stratify = labels if np.bincount(labels).min() >= 2 else None
    rest, held_out = train_test_split(index, test_size=fraction, random_state=seed,
                                      stratify=stratify)
    return rest, held_out


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
