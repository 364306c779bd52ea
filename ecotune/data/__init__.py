"""Data sets of the built-in trainer, as in-memory tensors split train/val/test.

``load_data(name, **options)`` returns :class:`DataSplits`; results are cached per
process, so trials after the first do not reload. This layer knows nothing of Optuna.
Which options each data set takes (:data:`DATASET_OPTIONS`, :func:`options_for`) is
importable without torch: the study file's ``[data]`` section is checked with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports
from ecotune.data._options import DATASET_OPTIONS, IMAGE_SETS, options_for, takes_option

_EXPORTS = {
    "DataNotFoundError": "ecotune.data._vision",
    "DataSplits": "ecotune.data._splits",
    "DATASETS": "ecotune.data._load",
    "carve_validation": "ecotune.data._splits",
    "default_root": "ecotune.data._vision",
    "load_data": "ecotune.data._load",
    "stratified_split": "ecotune.data._splits",
    # The loaders behind DATASETS, one per data set.
    "load_cifar10_splits": "ecotune.data._vision",
    "load_digits_splits": "ecotune.data._digits",
    "load_fake_splits": "ecotune.data._fake",
    "load_fashion_mnist_splits": "ecotune.data._vision",
    "load_gtsrb_splits": "ecotune.data._vision",
    "load_mnist_splits": "ecotune.data._vision",
}

__all__ = ["DATASET_OPTIONS", "DataNotFoundError", "DataSplits", "DATASETS", "IMAGE_SETS",
           "carve_validation", "default_root", "load_data", "options_for",
           "stratified_split", "takes_option"]

if TYPE_CHECKING:
    from ecotune.data._load import DATASETS, load_data
    from ecotune.data._splits import DataSplits, carve_validation, stratified_split
    from ecotune.data._vision import DataNotFoundError, default_root

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
