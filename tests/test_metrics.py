"""Per-class reports, confusion matrices and the metrics JSON files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from lorafm_helpers import (
    CLASSES,
    confusion_matrix,
    evaluate,
    per_class_report,
    read_metrics_json,
    report_delta,
    report_from_metrics,
    write_metrics_json,
)


def random_predictions(seed=0, n=500):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 10, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, 10, n))
    y_pred[y_pred == 9] = 8  # class 9 is never predicted: precision 0 by convention
    return y_true, y_pred


def test_report_matches_scikit_learn():
    y_true, y_pred = random_predictions()
    report = per_class_report(torch.tensor(y_true), torch.tensor(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(10), zero_division=0)
    assert list(report.index) == list(CLASSES)
    np.testing.assert_allclose(report["precision"], p)
    np.testing.assert_allclose(report["recall"], r)
    np.testing.assert_allclose(report["f1"], f)
    assert report["support"].tolist() == s.tolist()


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_evaluate_round_trips_through_json(tmp_path):
    y_true, y_pred = random_predictions(1)
    metrics = evaluate(y_true, y_pred)
    assert metrics["accuracy"] == pytest.approx((y_true == y_pred).mean())
    path = write_metrics_json(tmp_path / "m.json", {**metrics, "seconds": np.float32(1.5), "n": np.int64(3)})
    back = read_metrics_json(path)
    assert back["confusion_matrix"] == metrics["confusion_matrix"]
    assert back["seconds"] == 1.5 and back["n"] == 3
    assert report_from_metrics(back).loc["Dress", "recall"] == pytest.approx(
        metrics["per_class"]["Dress"]["recall"])


def test_report_delta():
    before = per_class_report(*random_predictions(2))
    after = per_class_report(*random_predictions(3))
    delta = report_delta(before, after)
    assert delta[("change", "f1")].tolist() == pytest.approx((after["f1"] - before["f1"]).tolist())


def test_non_finite_numbers_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_metrics_json(tmp_path / "bad.json", {"loss": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_missing_metrics_file_names_the_remedy(tmp_path):
    with pytest.raises(FileNotFoundError, match="make tutorial"):
        read_metrics_json(tmp_path / "nope.json")
