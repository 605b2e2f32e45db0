"""Chapter 05 executed with papermill at its defaults, after chapter 04: its analysis agrees with
chapter 04's numbers and with itself."""

from __future__ import annotations

import numpy as np
import pytest

from lorafm_helpers import CLASSES, DRESS, read_metrics_json


@pytest.fixture(scope="module")
def results(series) -> tuple[dict, dict]:
    series.run("04_oversampling_and_weighted_loss")
    series.run("05_confusion_matrix_analysis")
    return (read_metrics_json(series.artifacts / "analysis.json"),
            read_metrics_json(series.artifacts / "lora_metrics.json"))


def test_uses_chapter_04s_adapter_and_bias(results):
    analysis, lora = results
    assert analysis["adapter_source"] == "loaded"
    assert analysis["bias"] == lora["logit_bias"]["bias"]


def test_confusion_matrices_are_chapter_04s(results):
    analysis, lora = results
    for key in ("baseline", "lora"):
        assert analysis["confusion_matrix"][key] == lora[key]["confusion_matrix"]
    before, after = (np.array(analysis["confusion_matrix"][k]) for k in ("baseline", "lora"))
    delta = np.array(analysis["confusion_delta"])
    assert np.array_equal(delta, after - before)
    assert not delta.sum(1).any()  # each class keeps its 1,000 test images
    assert before.sum() == after.sum() == 10_000


def test_dress_row_and_column(results):
    analysis, _ = results
    before = np.array(analysis["confusion_matrix"]["baseline"])
    assert list(analysis["dress_mistaken_for"]["before"].values()) == before[DRESS].tolist()
    assert list(analysis["mistaken_for_dress"]["before"].values()) == before[:, DRESS].tolist()
    # the recipe sends more images into the Dress column and fewer real dresses out of it
    into, out_of = analysis["mistaken_for_dress"], analysis["dress_mistaken_for"]
    assert sum(into["after"].values()) > sum(into["before"].values())
    assert out_of["after"]["Dress"] > out_of["before"]["Dress"]


def test_fixed_minus_broken_is_the_accuracy_change(results):
    analysis, lora = results
    changed = analysis["changed"]
    assert changed["net"] == changed["fixed"] - changed["broken"]
    assert changed["net"] == round((lora["lora"]["accuracy"] - lora["baseline"]["accuracy"]) * 10_000)
    assert sum(row["fixed"] for row in changed["by_class"].values()) == changed["fixed"]


def test_operating_points_and_precision_recall(results):
    analysis, lora = results
    for key in ("baseline", "lora", "logit_bias"):
        point = analysis["operating_points"][key]
        assert point["recall"] == lora[key]["per_class"]["Dress"]["recall"]
        assert point["precision"] == lora[key]["per_class"]["Dress"]["precision"]
    assert all(0.9 < ap <= 1 for ap in analysis["average_precision"].values())
    assert 0 < analysis["bias_path_precision_at_lora_recall"] <= 1
    assert analysis["agreement"]["lora_vs_logit_bias"] > 0.95


def test_forgetting_is_small(results):
    analysis, lora = results
    changes = analysis["f1_change"]["lora"]
    assert sorted(changes) == sorted(c for c in CLASSES if c != "Dress")
    assert analysis["max_other_f1_drop"] == pytest.approx(-min(changes.values()))
    assert analysis["max_other_f1_drop"] <= 0.02
    coat = lora["lora"]["per_class"]["Coat"]["f1"] - lora["baseline"]["per_class"]["Coat"]["f1"]
    assert changes["Coat"] == pytest.approx(coat)


def test_chapter_runs_within_three_minutes(results):
    analysis, _ = results
    assert analysis["seconds"] <= 180
