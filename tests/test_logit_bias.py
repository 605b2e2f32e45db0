"""The zero-parameter baseline: a constant added to the Dress logit, chosen on validation."""

from __future__ import annotations

import pytest
import torch

from lorafm_helpers import DRESS, ParameterError, per_class_report
from lorafm_helpers.logit_bias import add_class_bias, bias_sweep, choose_dress_bias, class_margin


def toy_logits(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy logits of a 10-class problem: the true class gets +1.5, then Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    logits = torch.randn(n, 10, generator=g)
    logits[torch.arange(n), labels] += 1.5
    return logits, labels


def dress_stats(logits, labels, bias):
    pred = add_class_bias(logits, bias).argmax(1)
    predicted = int((pred == DRESS).sum())
    tp = int(((pred == DRESS) & (labels == DRESS)).sum())
    recall = tp / int((labels == DRESS).sum())
    precision = tp / predicted if predicted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return predicted, recall, f1


def decision_points(logits) -> list[float]:
    """Every bias at which some row switches to or from Dress, and a little either side."""
    points = (-class_margin(logits)).tolist()
    return sorted(p + d for p in points for d in (-1e-4, 1e-4))


def test_add_class_bias_shifts_only_that_column_and_copies():
    logits = torch.zeros(3, 10)
    shifted = add_class_bias(logits, 0.75)
    assert torch.equal(logits, torch.zeros(3, 10))
    assert torch.allclose(shifted[:, DRESS], torch.full((3,), 0.75))
    assert shifted.sum() == pytest.approx(3 * 0.75)


def test_class_margin_is_dress_minus_best_other():
    logits = torch.tensor([[0.0, 1.0, 0.0, 3.0, 2.5, 0, 0, 0, 0, 0],
                           [4.0, 0.0, 0.0, 1.0, 0.0, 0, 0, 0, 0, 0]])
    assert torch.allclose(class_margin(logits), torch.tensor([0.5, -3.0]))


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_target_recall_is_reached_with_fewest_dress_predictions(target):
    logits, labels = toy_logits()
    bias = choose_dress_bias(logits, labels, target_recall=target)
    predicted, recall, _ = dress_stats(logits, labels, bias)
    assert recall >= target - 1e-9
    # No bias that also reaches the target predicts Dress fewer times.
    reaching = [dress_stats(logits, labels, b) for b in decision_points(logits)]
    assert predicted == min(p for p, r, _ in reaching if r >= target - 1e-9)


def test_target_below_current_recall_gives_a_negative_bias():
    logits, labels = toy_logits()
    _, recall_now, _ = dress_stats(logits, labels, 0.0)
    bias = choose_dress_bias(logits, labels, target_recall=recall_now / 2)
    assert bias < 0
    assert dress_stats(logits, labels, bias)[1] >= recall_now / 2


def test_without_target_the_bias_maximises_dress_f1():
    logits, labels = toy_logits(seed=1)
    bias = choose_dress_bias(logits, labels)
    best = max(f1 for _, _, f1 in (dress_stats(logits, labels, b) for b in decision_points(logits)))
    assert dress_stats(logits, labels, bias)[2] == pytest.approx(best)
    assert best > dress_stats(logits, labels, 0.0)[2]  # the toy problem leaves room to improve


def test_bias_sits_between_decision_points():
    # Dress margins 2, 1, -1, -3 (all rows are Dress): recall 3/4 needs a bias in (1, 3].
    logits = torch.zeros(4, 10)
    logits[:, DRESS] = torch.tensor([2.0, 1.0, -1.0, -3.0])
    labels = torch.full((4,), DRESS)
    assert choose_dress_bias(logits, labels, target_recall=0.75) == pytest.approx(2.0)
    assert choose_dress_bias(logits, labels, target_recall=0.25) == pytest.approx(-1.5)


def test_bias_sweep_agrees_with_the_classification_report():
    logits, labels = toy_logits()
    sweep = bias_sweep(logits, labels, [0.0, 0.75])
    for row in sweep.itertuples():
        pred = add_class_bias(logits, row.bias).argmax(1)
        report = per_class_report(labels, pred).iloc[DRESS]
        assert (row.precision, row.recall, row.f1) == pytest.approx(
            (report["precision"], report["recall"], report["f1"]))
        assert row.accuracy == pytest.approx(float((pred == labels).float().mean()))
    assert sweep.loc[1, "recall"] >= sweep.loc[0, "recall"]


@pytest.mark.parametrize("kwargs, message", [
    ({"target_recall": 0.0}, "target_recall"),
    ({"target_recall": 1.5}, "target_recall"),
    ({"target_recall": True}, "target_recall"),
    ({"cls": 10}, "cls"),
])
def test_bad_arguments_are_refused_with_a_message(kwargs, message):
    logits, labels = toy_logits()
    with pytest.raises(ParameterError, match=message):
        choose_dress_bias(logits, labels, **kwargs)


def test_refuses_mismatched_shapes_and_missing_class():
    logits, labels = toy_logits()
    with pytest.raises(ParameterError, match="one label per row"):
        choose_dress_bias(logits, labels[:-1])
    with pytest.raises(ParameterError, match=r"shape \(N, classes"):
        choose_dress_bias(logits[0], labels)
    with pytest.raises(ParameterError, match="no Dress"):
        choose_dress_bias(logits[labels != DRESS], labels[labels != DRESS])
