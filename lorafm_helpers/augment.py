"""Label-preserving augmentation: mirrored and slightly shifted copies of training images.

Oversampling repeats the same Dress images; augmented copies show the model new, plausible
images of the same class instead (a dress mirrored left-right or moved by a pixel or two is
still a dress). The copies are made once, in memory, so batches stay tensor slices.
Introduced in notebooks/06_experiments.ipynb.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable

import torch

from .data import CLASSES, MEAN, STD, FashionMNIST
from .errors import ParameterError

SIDE = 28  # Fashion-MNIST images are 28 x 28
BACKGROUND = -MEAN / STD  # a black pixel after normalisation: what a shift moves in at the border


def shift_and_flip(x: torch.Tensor, max_shift: int = 2, flip: bool = True, seed: int = 0) -> torch.Tensor:
    """A new tensor of normalised images (N, 784): each mirrored left-right with probability 1/2
    (when `flip`) and moved by a random whole number of pixels in -max_shift..max_shift along
    each axis, the uncovered border filled with background. Seeded; `x` is not changed.

    Introduced in notebooks/06_experiments.ipynb.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, numbers.Integral) \
            or not 0 <= max_shift < SIDE:
        raise ParameterError(f"max_shift must be a whole number of pixels in 0..{SIDE - 1}, "
                             f"got {max_shift!r}.")
    if x.ndim != 2 or x.shape[1] != SIDE * SIDE:
        raise ParameterError(f"x must be normalised images of shape (N, {SIDE * SIDE}), "
                             f"got {tuple(x.shape)}.")
    generator = torch.Generator().manual_seed(seed)
    n, p = len(x), int(max_shift)
    images = x.reshape(n, SIDE, SIDE)
    if flip:
        mirrored = torch.rand(n, generator=generator) < 0.5
        images = torch.where(mirrored[:, None, None], images.flip(2), images)
    padded = torch.full((n, SIDE + 2 * p, SIDE + 2 * p), BACKGROUND, dtype=x.dtype)
    padded[:, p : p + SIDE, p : p + SIDE] = images
    dx = torch.randint(-p, p + 1, (n,), generator=generator)
    dy = torch.randint(-p, p + 1, (n,), generator=generator)
    out = torch.empty_like(images)
    for right in range(-p, p + 1):  # one slice per shift: (2p+1)^2 vectorised copies
        for down in range(-p, p + 1):
            chosen = (dx == right) & (dy == down)
            # Moving the content right by `right` means reading the padded image from `right` columns left.
            out[chosen] = padded[chosen, p - down : p - down + SIDE, p - right : p - right + SIDE]
    return out.reshape(n, SIDE * SIDE)


def with_augmented_copies(data: FashionMNIST, classes: Iterable[int] | int, copies: int = 1,
                          max_shift: int = 2, flip: bool = True, seed: int = 0) -> FashionMNIST:
    """`data` with `copies` augmented copies (`shift_and_flip`) of every training image of
    `classes` appended to the training split; validation and test are untouched.

    `copies=2` for one class gives it three times its share, like `oversample(..., 3)`, but the
    extra images are new variants instead of repeats.
    Introduced in notebooks/06_experiments.ipynb.
    """
    wanted = [classes] if isinstance(classes, numbers.Integral) else list(classes)
    if not wanted or any(isinstance(c, bool) or not isinstance(c, numbers.Integral)
                         or not 0 <= c < len(CLASSES) for c in wanted):
        raise ParameterError(f"classes must be one or more class indices 0..{len(CLASSES) - 1}, "
                             f"got {classes!r}.")
    if isinstance(copies, bool) or not isinstance(copies, numbers.Integral) or copies < 1:
        raise ParameterError(f"copies must be a whole number >= 1, got {copies!r}.")
    index = torch.nonzero(torch.isin(data.train_y, torch.tensor(wanted))).flatten()
    xs, ys = [data.train_x], [data.train_y]
    for k in range(int(copies)):
        xs.append(shift_and_flip(data.train_x[index], max_shift, flip, seed=seed + k))
        ys.append(data.train_y[index])
    return dataclasses.replace(data, train_x=torch.cat(xs), train_y=torch.cat(ys))
