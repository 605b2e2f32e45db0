"""Fashion-MNIST as in-memory tensors, found offline and verified.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import LorafmError

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DRESS = 3

# Pixel statistics of the 60,000 training images scaled to [0, 1].
MEAN = 0.2860
STD = 0.3530

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the decompressed official files and how many items each holds.
OFFICIAL = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 60000),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60000),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 10000),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10000),
}
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

REMEDIES = """How to fix it (any one of these):
  1. On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist
     (puts the files in /usr/share/datasets/fashion-mnist/); `make data` does this for you.
  2. Put the four files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
     t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in a folder and
     export LORAFM_DATA=/path/to/that/folder (or pass root=...).
  3. Allow torchvision to download them: load_fashion_mnist(download=True)
     (needs internet access)."""


class DatasetNotFoundError(LorafmError, FileNotFoundError):
    """No complete copy of Fashion-MNIST was found in any searched place."""


class DatasetCorruptError(LorafmError, ValueError):
    """A Fashion-MNIST file was found but its content is not what it should be."""


@dataclass
class FashionMNIST:
    """Normalised image tensors (N, 784) and label tensors (N,) for each split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: Path

    def __repr__(self) -> str:
        return (
            f"FashionMNIST(train={len(self.train_y):,}, val={len(self.val_y):,}, "
            f"test={len(self.test_y):,}, source='{self.source}')"
        )


def candidate_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for the data, in order.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    dirs = []
    if root is not None:
        dirs.append(Path(root))
    if os.environ.get("LORAFM_DATA"):
        dirs.append(Path(os.environ["LORAFM_DATA"]))
    dirs += [Path("data"), DEBIAN_DIR]
    # torchvision's layout below any of the above: ROOT/FashionMNIST/raw/
    return dirs + [d / "FashionMNIST" / "raw" for d in dirs]


def find_files(directory: Path) -> dict[str, Path] | None:
    """The four files in `directory` (plain or gzipped), or None if any is missing."""
    found = {}
    for key, name in FILES.items():
        for path in (directory / name, directory / f"{name}.gz"):
            if path.is_file():
                found[key] = path
                break
        else:
            return None
    return found


def read_idx(path: Path, verify: bool = True) -> np.ndarray:
    """Parse one IDX file (plain or gzipped) and check magic number, shape and checksum.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetCorruptError(f"{path}: cannot be read or decompressed ({err}).") from err
    name = path.name.removesuffix(".gz")
    if len(raw) < 8:
        raise DatasetCorruptError(f"{path}: only {len(raw)} bytes, too short for an IDX header.")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DatasetCorruptError(
            f"{path}: magic number {magic} is neither {IMAGES_MAGIC} (images) nor "
            f"{LABELS_MAGIC} (labels); this is not an IDX file."
        )
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected_ndim, inner = (3, [28, 28]) if magic == IMAGES_MAGIC else (1, [])
    if ndim != expected_ndim or dims[1:] != inner:
        raise DatasetCorruptError(f"{path}: shape {dims} is not (N, 28, 28) images or (N,) labels.")
    offset = 4 + 4 * ndim
    size = int(np.prod(dims))
    if len(raw) - offset != size:
        raise DatasetCorruptError(
            f"{path}: header promises {size:,} bytes of data but the file holds "
            f"{len(raw) - offset:,}; the file is truncated or padded. Reinstall it."
        )
    if verify and name in OFFICIAL:
        sha, count = OFFICIAL[name]
        if dims[0] != count:
            raise DatasetCorruptError(f"{path}: holds {dims[0]:,} items; the official file holds {count:,}.")
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha:
            raise DatasetCorruptError(
                f"{path}: SHA-256 of the decompressed content is {digest}, expected {sha}. "
                "The file is damaged or not the official Fashion-MNIST; reinstall it."
            )
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)
    if magic == LABELS_MAGIC and array.size and array.max() > 9:
        raise DatasetCorruptError(f"{path}: label {array.max()} found; labels must be 0..9.")
    return array


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 (N, 784), scaled to [0, 1] then standardised."""
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return (x - MEAN) / STD


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with `val_size` images spread equally over the classes, seeded.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = val_size // len(classes)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes])
    val = np.sort(val)
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def load_fashion_mnist(
    root: str | os.PathLike | None = None,
    download: bool = False,
    val_size: int = 5000,
    seed: int = 0,
    verify: bool = True,
) -> FashionMNIST:
    """Load Fashion-MNIST into memory: normalised (N, 784) float tensors and int64 labels.

    The validation split (`val_size` images, equal per class, chosen with `seed`) comes out of
    the 60,000 training images; the official 10,000 test images stay untouched.
    Searches `root`, $LORAFM_DATA, ./data, Debian's dataset-fashion-mnist folder and
    torchvision's layout below each; downloads with torchvision only when `download=True`.
    `verify=False` skips the official checksums and counts (for small synthetic files).

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    if root is not None and not download and not Path(root).is_dir():
        raise DatasetNotFoundError(f"root={str(root)!r} is not a folder. Fix the path, or pass root=None "
                                   f"to search the usual places.\n\n{REMEDIES}")
    searched = candidate_dirs(root)
    files = next((f for d in searched if (f := find_files(d))), None)
    if files is None and download:
        target = Path(root or os.environ.get("LORAFM_DATA") or "data")
        try:
            from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

            TorchvisionFashionMNIST(str(target), train=True, download=True)
            TorchvisionFashionMNIST(str(target), train=False, download=True)
        except Exception as err:  # network errors come in many types
            raise DatasetNotFoundError(f"Download into {target} failed: {err}\n\n{REMEDIES}") from err
        files = find_files(target / "FashionMNIST" / "raw")
    if files is None:
        places = "\n".join(f"  - {d}" for d in searched)
        raise DatasetNotFoundError(
            f"Fashion-MNIST was not found. Searched, in order:\n{places}\n\n{REMEDIES}"
        )
    arrays = {key: read_idx(path, verify) for key, path in files.items()}
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise DatasetCorruptError(
                f"{files[f'{split}_images'].parent}: {split} has {n_images:,} images "
                f"but {n_labels:,} labels."
            )
    train_idx, val_idx = stratified_split(arrays["train_labels"], val_size, seed)
    x, y = normalise(arrays["train_images"]), torch.from_numpy(arrays["train_labels"].astype(np.int64))
    return FashionMNIST(
        train_x=x[train_idx],
        train_y=y[train_idx],
        val_x=x[val_idx],
        val_y=y[val_idx],
        test_x=normalise(arrays["test_images"]),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        source=files["train_images"].parent,
    )


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    """Normalised (N, 784) back to [0, 1] images (N, 28, 28), for display.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    return (x * STD + MEAN).reshape(-1, 28, 28).clamp(0, 1)


def oversample(labels: torch.Tensor, cls: int, factor: int) -> torch.Tensor:
    """Indices of every sample, with those of class `cls` repeated `factor` times in all.

    Index the data with the result: `x[idx], y[idx]`. `factor=1` returns every index once.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a whole number >= 1 (1 = no oversampling), got {factor!r}.")
    if not 0 <= cls < len(CLASSES):
        raise ValueError(f"cls must be a class index 0..{len(CLASSES) - 1}, got {cls!r}.")
    everything = torch.arange(len(labels))
    extra = torch.nonzero(labels == cls).flatten().repeat(factor - 1)
    return torch.cat([everything, extra])
