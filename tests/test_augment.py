"""Label-preserving augmentation: shifted and mirrored copies, appended to the training split."""

from __future__ import annotations

import pytest
import torch

from lorafm_helpers import DRESS, FashionMNIST, ParameterError, shift_and_flip, with_augmented_copies
from lorafm_helpers.augment import BACKGROUND


def dot(row: int, col: int, n: int = 1) -> torch.Tensor:
    """n images, background everywhere except one bright pixel."""
    x = torch.full((n, 28, 28), BACKGROUND)
    x[:, row, col] = 2.0
    return x.reshape(n, 784)


def bright(x: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(map(int, divmod(int(i), 28))) for i in torch.nonzero(x > 0).flatten()]


def test_no_shift_no_flip_is_the_identity():
    x = torch.randn(5, 784)
    assert torch.equal(shift_and_flip(x, max_shift=0, flip=False), x)


def test_pixels_move_by_at_most_max_shift_and_flip_mirrors():
    x = dot(10, 5, n=400)
    out = shift_and_flip(x, max_shift=2, flip=True, seed=1)
    positions = [bright(img)[0] for img in out]
    assert all(8 <= r <= 12 for r, _ in positions)
    cols = {c for _, c in positions}
    assert cols <= set(range(3, 8)) | set(range(27 - 5 - 2, 27 - 5 + 3))  # as is, or mirrored (col 22)
    assert cols & set(range(3, 8)) and cols & set(range(20, 25))  # both happen
    assert len({(r, c) for r, c in positions}) > 10  # many different shifts


def test_uncovered_border_is_background_and_input_unchanged():
    x = torch.full((50, 784), 1.0)
    before = x.clone()
    out = shift_and_flip(x, max_shift=2, flip=False, seed=0).reshape(-1, 28, 28)
    assert torch.equal(x, before)
    background = torch.tensor(BACKGROUND).item()  # in float32, as the images
    assert set(out.unique().tolist()) <= {1.0, background}
    assert (out == background).any()


def test_seeded():
    x = torch.randn(20, 784)
    assert torch.equal(shift_and_flip(x, seed=3), shift_and_flip(x, seed=3))
    assert not torch.equal(shift_and_flip(x, seed=3), shift_and_flip(x, seed=4))


def test_with_augmented_copies_appends_only_to_training():
    y = torch.arange(100) % 10
    data = FashionMNIST(torch.randn(100, 784), y, torch.randn(20, 784), y[:20], torch.randn(30, 784), y[:30],
                        source="synthetic")
    more = with_augmented_copies(data, DRESS, copies=2)
    assert len(more.train_y) == 100 + 2 * 10
    assert torch.equal(more.train_x[:100], data.train_x)
    assert (more.train_y[100:] == DRESS).all()
    assert more.val_x is data.val_x and more.test_x is data.test_x
    assert len(with_augmented_copies(data, range(10)).train_y) == 200


@pytest.mark.parametrize("kwargs", [{"max_shift": -1}, {"max_shift": 28}, {"max_shift": 1.5}])
def test_bad_shift_is_refused(kwargs):
    with pytest.raises(ParameterError, match="max_shift"):
        shift_and_flip(torch.zeros(2, 784), **kwargs)


def test_bad_classes_or_copies_are_refused():
    y = torch.arange(10)
    data = FashionMNIST(torch.zeros(10, 784), y, torch.zeros(1, 784), y[:1], torch.zeros(1, 784), y[:1], "x")
    with pytest.raises(ParameterError, match="classes"):
        with_augmented_copies(data, [10])
    with pytest.raises(ParameterError, match="copies"):
        with_augmented_copies(data, DRESS, copies=0)
    with pytest.raises(ParameterError, match="shape"):
        shift_and_flip(torch.zeros(2, 100))
