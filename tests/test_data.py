"""The loader on small synthetic IDX files: parsing, normalisation, split, refusals."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from lorafm_helpers import data as data_module
from lorafm_helpers.data import (
    CLASSES,
    DRESS,
    MEAN,
    STD,
    DatasetCorruptError,
    DatasetNotFoundError,
    load_fashion_mnist,
    oversample,
)


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def make_dataset(folder, n_train=200, n_test=50, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, gz)
    return arrays


@pytest.fixture(autouse=True)
def no_system_data(monkeypatch, tmp_path):
    """Isolate every test from the real data: no $LORAFM_DATA, empty cwd, no Debian folder."""
    monkeypatch.delenv("LORAFM_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_module, "DEBIAN_DIR", tmp_path / "no-debian")


@pytest.mark.parametrize("gz", [True, False])
def test_parses_and_normalises(tmp_path, gz):
    arrays = make_dataset(tmp_path / "fm", gz=gz)
    d = load_fashion_mnist(tmp_path / "fm", val_size=50, verify=False)
    assert d.train_x.shape == (150, 784) and d.val_x.shape == (50, 784) and d.test_x.shape == (50, 784)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    expected = (arrays["t10k-images-idx3-ubyte"].reshape(50, -1) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(d.test_x.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert d.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_split_is_stratified_disjoint_and_seeded(tmp_path):
    make_dataset(tmp_path / "fm")
    a = load_fashion_mnist(tmp_path / "fm", val_size=50, seed=3, verify=False)
    b = load_fashion_mnist(tmp_path / "fm", val_size=50, seed=3, verify=False)
    c = load_fashion_mnist(tmp_path / "fm", val_size=50, seed=4, verify=False)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.val_x, c.val_x)
    assert torch.bincount(a.val_y, minlength=10).tolist() == [5] * 10
    all_rows = torch.cat([a.train_x, a.val_x])
    assert len(torch.unique(all_rows, dim=0)) == 200  # no image in both splits, none lost


def test_search_order_env_then_cwd(tmp_path, monkeypatch):
    make_dataset(tmp_path / "env", n_train=100, n_test=20)
    make_dataset(tmp_path / "data", n_train=200, n_test=40)
    monkeypatch.setenv("LORAFM_DATA", str(tmp_path / "env"))
    assert len(load_fashion_mnist(val_size=10, verify=False).test_y) == 20
    monkeypatch.delenv("LORAFM_DATA")
    assert len(load_fashion_mnist(val_size=10, verify=False).test_y) == 40  # ./data


def test_torchvision_layout(tmp_path):
    make_dataset(tmp_path / "root" / "FashionMNIST" / "raw")
    assert load_fashion_mnist(tmp_path / "root", val_size=10, verify=False).source.name == "raw"


def test_missing_data_names_every_remedy(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist(tmp_path / "empty")
    message = str(err.value)
    assert "Searched, in order" in message
    for remedy in ("dataset-fashion-mnist", "LORAFM_DATA", "download=True", str(tmp_path / "empty")):
        assert remedy in message


def test_a_mistyped_root_is_not_silently_replaced(tmp_path, monkeypatch):
    make_dataset(tmp_path / "data")  # would be found by the search
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        load_fashion_mnist(tmp_path / "typo", verify=False)


def test_truncated_file_is_corrupt(tmp_path):
    make_dataset(tmp_path / "fm", gz=False)
    path = tmp_path / "fm" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetCorruptError, match="train-images-idx3-ubyte.*truncated"):
        load_fashion_mnist(tmp_path / "fm", val_size=10, verify=False)


def test_bad_magic_and_bad_labels_are_corrupt(tmp_path):
    make_dataset(tmp_path / "fm", gz=False)
    labels = tmp_path / "fm" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[-1] = 12
    labels.write_bytes(bytes(raw))
    with pytest.raises(DatasetCorruptError, match="labels must be 0..9"):
        load_fashion_mnist(tmp_path / "fm", val_size=10, verify=False)
    labels.write_bytes(b"\x00\x00\x09\x99" + bytes(raw[4:]))
    with pytest.raises(DatasetCorruptError, match="magic number"):
        load_fashion_mnist(tmp_path / "fm", val_size=10, verify=False)


def test_checksum_mismatch_is_corrupt(tmp_path, monkeypatch):
    make_dataset(tmp_path / "fm", n_train=200, n_test=50)
    official = dict(data_module.OFFICIAL)
    official["train-images-idx3-ubyte"] = ("0" * 64, 200)
    monkeypatch.setattr(data_module, "OFFICIAL", official)
    with pytest.raises(DatasetCorruptError, match="SHA-256"):
        load_fashion_mnist(tmp_path / "fm", val_size=10)


def test_unofficial_counts_are_refused_when_verifying(tmp_path):
    make_dataset(tmp_path / "fm")
    with pytest.raises(DatasetCorruptError, match="official file holds 60,000"):
        load_fashion_mnist(tmp_path / "fm", val_size=10)


def test_oversample_counts():
    labels = torch.tensor([0, 3, 3, 1, 2, 3])
    idx = oversample(labels, DRESS, 3)
    assert len(idx) == 6 + 2 * 3
    assert torch.bincount(labels[idx], minlength=4).tolist() == [1, 1, 1, 9]
    assert torch.equal(oversample(labels, DRESS, 1), torch.arange(6))
    with pytest.raises(ValueError, match="factor"):
        oversample(labels, DRESS, 0)
    with pytest.raises(ValueError, match="class index"):
        oversample(labels, len(CLASSES), 2)
