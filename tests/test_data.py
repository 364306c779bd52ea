"""Image data sets from files in torchvision's layout, written by the tests; and the real
Fashion-MNIST from Debian's dataset-fashion-mnist package."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from ecotune.data import DataNotFoundError, load_data
from ecotune.data._vision import DEBIAN_FASHION_MNIST, read_idx
from tests.conftest import require_component

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_layout(root: Path, folder: str, n_train: int = 200, n_test: int = 50) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", RNG.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_idx_reader_round_trip(tmp_path: Path) -> None:
    array = RNG.integers(0, 256, (3, 4, 5)).astype(np.uint8)
    write_idx(tmp_path / "a", array)
    assert np.array_equal(read_idx(tmp_path / "a"), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize(("name", "folder"), [("fashion_mnist", "FashionMNIST"),
                                              ("mnist", "MNIST")])
def test_mnist_layout_keeps_the_test_split_and_carves_validation(tmp_path: Path, name: str,
                                                                 folder: str) -> None:
    write_mnist_layout(tmp_path, folder)
    splits = load_data(name, root=str(tmp_path), val_fraction=0.1)
    assert splits.sizes() == {"train": 180, "val": 20, "test": 50}
    assert splits.input_shape == (1, 28, 28) and splits.n_classes == 10
    assert 0.0 <= float(splits.x_train.min()) and float(splits.x_train.max()) <= 1.0
    expected_test = read_idx(tmp_path / folder / "raw" / "t10k-images-idx3-ubyte")
    assert np.allclose(splits.x_test[:, 0].numpy() * 255, expected_test, atol=1e-3)
    # Every validation class is represented (stratified).
    assert len(set(splits.y_val.tolist())) == 10


def test_cifar10_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 20) for i in range(1, 6)] + [("test_batch", 30)]:
        entry = {"data": RNG.integers(0, 256, (n, 3072)).astype(np.uint8),
                 "labels": [i % 10 for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    splits = load_data("cifar10", root=str(tmp_path), val_fraction=0.2)
    assert splits.sizes() == {"train": 80, "val": 20, "test": 30}
    assert splits.input_shape == (3, 32, 32)


def test_gtsrb_layout(tmp_path: Path) -> None:
    base = tmp_path / "gtsrb"
    for cls in range(3):
        folder = base / "GTSRB" / "Training" / f"{cls:05d}"
        folder.mkdir(parents=True)
        for i in range(4):
            size = (30 + i, 28 + cls)  # GTSRB images vary in size
            Image.fromarray(RNG.integers(0, 256, (*size[::-1], 3)).astype(np.uint8)).save(
                folder / f"{i:05d}_00000.ppm")
    test_images = base / "GTSRB" / "Final_Test" / "Images"
    test_images.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i in range(5):
        Image.fromarray(RNG.integers(0, 256, (40, 40, 3)).astype(np.uint8)).save(
            test_images / f"{i:05d}.ppm")
        rows.append(f"{i:05d}.ppm;40;40;0;0;39;39;{i % 3}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    splits = load_data("gtsrb", root=str(tmp_path), val_fraction=0.25)
    assert splits.sizes() == {"train": 9, "val": 3, "test": 5}
    assert splits.input_shape == (3, 32, 32) and splits.n_classes == 43
    assert sorted(splits.y_test.tolist()) == [0, 0, 1, 1, 2]


@pytest.mark.parametrize(("name", "where"), [("mnist", "MNIST/raw"),
                                             ("cifar10", "cifar-10-batches-py"),
                                             ("gtsrb", "gtsrb")])
def test_missing_files_say_where_to_put_them(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(DataNotFoundError, match=rf"not found: put .* in {tmp_path}/{where}"):
        load_data(name, root=str(tmp_path), download=False)


def test_train_samples_keeps_a_fixed_subset(tmp_path: Path) -> None:
    write_mnist_layout(tmp_path, "MNIST")
    a = load_data("mnist", root=str(tmp_path), train_samples=50)
    b = load_data("mnist", root=str(tmp_path), train_samples=50)
    assert len(a.y_train) == 50 and (a.x_train == b.x_train).all()
    assert len(a.y_test) == 50  # validation and test untouched


def test_real_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    require_component((DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                      "Debian's dataset-fashion-mnist")
    splits = load_data("fashion_mnist", root=str(tmp_path))
    assert splits.sizes() == {"train": 54000, "val": 6000, "test": 10000}
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert sorted(set(splits.y_test.tolist())) == list(range(10))
    assert np.bincount(splits.y_test.numpy()).tolist() == [1000] * 10


def test_digits_are_scikit_learns_bundled_set_split_as_train_test_split_splits_it() -> None:
    """The digits loader reads scikit-learn's file without importing scikit-learn (its
    import costs each worker ~2 CPU-s): the same pixels, labels and splits, bit for bit,
    as ``load_digits`` and ``train_test_split`` give."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x, y = (bunch.images / 16.0).reshape(-1, 1, 8, 8), bunch.target
    rest, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0,
                                  stratify=y)
    train, val = train_test_split(rest, test_size=0.2 / 0.8, random_state=0,
                                  stratify=y[rest])
    splits = load_data("digits")
    for part, index in (("train", train), ("val", val), ("test", test)):
        assert torch.equal(getattr(splits, f"x_{part}"),
                           torch.as_tensor(x[index], dtype=torch.float32)), part
        assert torch.equal(getattr(splits, f"y_{part}"), torch.as_tensor(y[index])), part


@settings(max_examples=150, deadline=None)
@given(counts=st.lists(st.integers(0, 9), min_size=1, max_size=6),
       fraction=st.sampled_from([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7]),
       seed=st.integers(0, 2**31 - 1), shuffle=st.randoms(use_true_random=False))
def test_the_split_is_train_test_splits_on_any_labels(counts, fraction, seed,
                                                      shuffle) -> None:
    """Stratified where every class 0..max has two examples, plain shuffles otherwise,
    ties in the classes' shares broken by the same draws; where scikit-learn refuses a
    split (a class per side needed, an empty side), so does ecotune."""
    from sklearn.model_selection import train_test_split

    from ecotune.data._splits import _split

    y = np.array([label for label, n in enumerate(counts) for _ in range(n)], dtype=int)
    shuffle.shuffle(y)
    assume(len(y) >= 1)
    index = np.arange(len(y))
    stratify = y if np.bincount(y).min() >= 2 else None
    try:
        expected = train_test_split(index, test_size=fraction, random_state=seed,
                                    stratify=stratify)
    except ValueError:
        with pytest.raises(ValueError):
            _split(index, y, fraction, seed)
        return
    rest, held_out = _split(index, y, fraction, seed)
    assert rest.tolist() == expected[0].tolist() and held_out.tolist() == expected[1].tolist()
