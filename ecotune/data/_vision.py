"""Image data sets on disk, in torchvision's layout: Fashion-MNIST, MNIST, CIFAR-10, GTSRB.

Each keeps its original train/test split; the validation split is carved from train with
a fixed seed. Files are looked for under ``root`` (default ``$ECOTUNE_DATA`` or
``~/.cache/ecotune/data``):

- Fashion-MNIST: ``ROOT/FashionMNIST/raw/*-ubyte``; where absent but Debian's
  ``dataset-fashion-mnist`` package is installed (``/usr/share/datasets/fashion-mnist``),
  its ``.gz`` files are unpacked there once.
- MNIST: ``ROOT/MNIST/raw/*-ubyte``.
- CIFAR-10: ``ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}``.
- GTSRB: ``ROOT/gtsrb/GTSRB/Training/<class>/*.ppm`` and
  ``ROOT/gtsrb/GTSRB/Final_Test/Images/*.ppm`` with ``ROOT/gtsrb/GT-final_test.csv``.

With ``download=True`` a missing set is fetched by torchvision (needs internet); otherwise,
or when that fails, a :class:`DataNotFoundError` says which files to put where.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from pathlib import Path

import numpy as np

from ecotune.data._splits import DataSplits, carve_validation

__all__ = ["DataNotFoundError", "default_root", "read_idx", "load_fashion_mnist_splits",
           "load_mnist_splits", "load_cifar10_splits", "load_gtsrb_splits", "DEBIAN_FASHION_MNIST"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_GTSRB_SIZE = 32  # GTSRB images vary in size; they are resized to 32x32 as in EAT


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where ecotune looks, and could not be fetched."""


def default_root() -> Path:
    """Where data sets are looked for: ``$ECOTUNE_DATA`` or ``~/.cache/ecotune/data``."""
    return Path(os.environ.get("ECOTUNE_DATA", Path.home() / ".cache" / "ecotune" / "data"))


def _missing(name: str, where: Path, files: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"data set {name!r} not found: put {files} in {where} (torchvision's layout), "
        "or set download = true on a machine with internet")


def _try_download(name: str, root: Path, where: Path, files: str, fetch) -> None:
    try:
        fetch()
    except Exception as err:  # URLError, HTTP errors, a refused connection, ...
        raise DataNotFoundError(
            f"data set {name!r} not found and could not be downloaded ({type(err).__name__}: "
            f"{err}): put {files} in {where} (torchvision's layout)") from None


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (the MNIST format) as an array.

    Header: two zero bytes, type code 0x08 (unsigned byte), the number of dimensions, then
    each dimension as a big-endian int32. (torchvision's reader took 12 s for
    Fashion-MNIST's training images here; this takes a fraction of a second.)
    """
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    n_dims = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=n_dims, offset=4)
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path}: holds {array.size} bytes, its header says {dims.tolist()}")
    return array.reshape(tuple(int(d) for d in dims))


def _idx_arrays(raw: Path) -> tuple[np.ndarray, ...]:
    return tuple(read_idx(raw / f) for f in _IDX_FILES)


def _mnist_like(name: str, folder: str, root: Path, val_fraction: float, download: bool,
                torchvision_class: str) -> DataSplits:
    raw = root / folder / "raw"
    files = ", ".join(_IDX_FILES)
    if not all((raw / f).is_file() for f in _IDX_FILES):
        if name == "fashion_mnist" and all(
                (DEBIAN_FASHION_MNIST / f"{f}.gz").is_file() for f in _IDX_FILES):
            raw.mkdir(parents=True, exist_ok=True)
            for f in _IDX_FILES:
                packed = DEBIAN_FASHION_MNIST / f"{f}.gz"
                with gzip.open(packed) as src, open(raw / f, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        elif download:
            import torchvision.datasets

            cls = getattr(torchvision.datasets, torchvision_class)
            _try_download(name, root, raw, files, lambda: [cls(str(root), train=t, download=True)
                                                           for t in (True, False)])
        else:
            raise _missing(name, raw, files)
    x_train, y_train, x_test, y_test = _idx_arrays(raw)
    scale = np.float32(1 / 255)
    return carve_validation(name, x_train[:, None] * scale, y_train.astype(np.int64),
                            x_test[:, None] * scale, y_test.astype(np.int64), 10, val_fraction)


def load_fashion_mnist_splits(root: str | Path | None = None, val_fraction: float = 0.1,
                              download: bool = False) -> DataSplits:
    """Fashion-MNIST, 60,000 train (less validation) and 10,000 test 28x28 images."""
    return _mnist_like("fashion_mnist", "FashionMNIST", Path(root or default_root()),
                       val_fraction, download, "FashionMNIST")


def load_mnist_splits(root: str | Path | None = None, val_fraction: float = 0.1,
                      download: bool = False) -> DataSplits:
    """MNIST digits, 60,000 train (less validation) and 10,000 test 28x28 images."""
    return _mnist_like("mnist", "MNIST", Path(root or default_root()), val_fraction, download,
                       "MNIST")


def load_cifar10_splits(root: str | Path | None = None, val_fraction: float = 0.1,
                        download: bool = False) -> DataSplits:
    """CIFAR-10 from its python batches (torchvision's download format)."""
    root = Path(root or default_root())
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    files = ", ".join(names)
    if not all((folder / n).is_file() for n in names):
        if not download:
            raise _missing("cifar10", folder, files)
        import torchvision.datasets

        _try_download("cifar10", root, folder, files,
                      lambda: torchvision.datasets.CIFAR10(str(root), download=True))

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        # The CIFAR format is Python pickles: read only files the user placed (or that
        # torchvision downloaded), never anything from study storage.
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return x, np.asarray(entry["labels"], dtype=np.int64)

    parts = [batch(n) for n in names[:5]]
    x_test, y_test = batch("test_batch")
    scale = np.float32(1 / 255)
    return carve_validation("cifar10", np.concatenate([p[0] for p in parts]) * scale,
                            np.concatenate([p[1] for p in parts]), x_test * scale, y_test, 10,
                            val_fraction)


def load_gtsrb_splits(root: str | Path | None = None, val_fraction: float = 0.1,
                      download: bool = False) -> DataSplits:
    """GTSRB traffic signs (43 classes), resized to 32x32, through torchvision."""
    import torch
    import torchvision.datasets
    from torchvision.transforms import v2

    root = Path(root or default_root())
    base = root / "gtsrb"
    files = "GTSRB/Training/<class>/*.ppm, GTSRB/Final_Test/Images/*.ppm and GT-final_test.csv"
    needed = [base / "GTSRB" / "Training", base / "GTSRB" / "Final_Test" / "Images",
              base / "GT-final_test.csv"]
    if not all(p.exists() for p in needed):
        if not download:
            raise _missing("gtsrb", base, files)
        _try_download("gtsrb", root, base, files, lambda: [
            torchvision.datasets.GTSRB(str(root), split=s, download=True)
            for s in ("train", "test")])
    transform = v2.Compose([v2.PILToTensor(), v2.Resize((_GTSRB_SIZE, _GTSRB_SIZE)),
                            v2.ToDtype(torch.float32, scale=True)])

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        data = torchvision.datasets.GTSRB(str(root), split=split, transform=transform)
        images, labels = zip(*(data[i] for i in range(len(data))))
        return torch.stack(images).numpy(), np.asarray(labels, dtype=np.int64)

    x_train, y_train = arrays("train")
    x_test, y_test = arrays("test")
    return carve_validation("gtsrb", x_train, y_train, x_test, y_test, 43, val_fraction)
