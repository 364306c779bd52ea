"""torchvision's FakeData: deterministic random images, for tests and smoke runs."""

from __future__ import annotations

import numpy as np

from ecotune.data._splits import DataSplits, stratified_split

__all__ = ["load_fake_splits"]


def load_fake_splits(
    n_samples: int = 1000,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    n_classes: int = 10,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DataSplits:
    """FakeData images as (N, C, H, W) tensors in [0, 1]; the same on every call.

    Example:
        >>> splits = load_fake_splits(n_samples=50, image_shape=(3, 8, 8), n_classes=5)
        >>> splits.input_shape, splits.n_classes
        ((3, 8, 8), 5)
    """
    from torchvision.datasets import FakeData
    from torchvision.transforms.functional import pil_to_tensor

    data = FakeData(size=n_samples, image_size=image_shape, num_classes=n_classes,
                    random_offset=0)
    images, labels = zip(*((pil_to_tensor(img), int(label)) for img, label in data))
    x = np.stack([img.numpy() for img in images]).astype(np.float32) / 255.0
    return stratified_split("fake", x, np.asarray(labels), n_classes, val_fraction,
                            test_fraction)
