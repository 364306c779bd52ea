"""Which ``load_data`` options each data set takes (torch-free: the study file's
``[data]`` section is checked and stored with it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DATASET_OPTIONS", "IMAGE_SETS", "options_for", "takes_option"]

#: The data sets read from files on disk (torchvision's layout).
IMAGE_SETS = ("fashion_mnist", "mnist", "cifar10", "gtsrb")

#: Options only some data sets take, with those data sets; every other option
#: (``train_samples``, ``val_fraction``) applies to all of them.
DATASET_OPTIONS: Mapping[str, tuple[str, ...]] = {
    # torchvision FakeData's size, image shape (C, H, W) and classes.
    "n_samples": ("fake",),
    "image_shape": ("fake",),
    "n_classes": ("fake",),
    # The image sets keep their own test split.
    "test_fraction": ("digits", "fake"),
    "root": IMAGE_SETS,
    "download": IMAGE_SETS,
}


def takes_option(name: str, option: str) -> bool:
    """Whether data set ``name`` takes ``option``.

    Example:
        >>> takes_option("digits", "image_shape"), takes_option("digits", "val_fraction")
        (False, True)
    """
    return name in DATASET_OPTIONS.get(option, (name,))


def options_for(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``settings`` that data set ``name`` takes.

    Example:
        >>> options_for("digits", {"train_samples": None, "n_samples": 10, "root": "/d"})
        {'train_samples': None}
    """
    return {option: value for option, value in settings.items() if takes_option(name, option)}
