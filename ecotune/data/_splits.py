"""Tensors of a data set split three ways: train (fit), val (the search's accuracy), test.

The test split is never used for training or for any selection: its accuracy is recorded
beside the objectives, so the accuracy a user reads on the front is unbiased.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["DataSplits", "stratified_split"]


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Float32 inputs of shape (N, C, H, W) and int64 labels for each split."""

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


def stratified_split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
) -> DataSplits:
    """Split ``x, y`` into train/val/test with each class in the same proportions.

    The split depends only on ``seed`` (fixed per data set), never on a trial.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    stratify = y if np.bincount(y).min() >= 3 else None
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                  stratify=stratify)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  random_state=seed,
                                  stratify=None if stratify is None else y[rest])

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(x[idx], dtype=torch.float32),
                torch.as_tensor(y[idx], dtype=torch.int64))

    return DataSplits(name, *tensors(train), *tensors(val), *tensors(test), n_classes)
