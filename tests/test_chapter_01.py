"""Chapter 01 executed with papermill at its defaults: the numbers its pages claim."""

from __future__ import annotations

import torch

from lorafm_helpers import CLASSES, DeepNN, load_checkpoint, read_metrics_json


def test_baseline_metrics(series):
    series.run("01_baseline_training")
    metrics = read_metrics_json(series.artifacts / "baseline_metrics.json")
    assert metrics["accuracy"] >= 0.895
    assert metrics["per_class"]["Dress"]["f1"] >= 0.88
    assert list(metrics["per_class"]) == list(CLASSES)
    assert metrics["parameters"] == 903_510
    assert sum(map(sum, metrics["confusion_matrix"])) == 10_000
    assert len(metrics["history"]) == metrics["recipe"]["epochs"] == 15
    assert metrics["train_seconds"] > 0


def test_baseline_checkpoint_is_a_plain_state_dict(series):
    series.run("01_baseline_training")
    model = DeepNN()
    state = load_checkpoint(series.artifacts / "baseline.pt", model)
    assert set(state) == {f"linear{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
