"""Experiment rows and the validation-only recommendation rule of chapter 06."""

from __future__ import annotations

import pytest
import torch

from lorafm_helpers import (
    CLASSES,
    EXPERIMENT_FIELDS,
    DeepNN,
    FashionMNIST,
    ParameterError,
    evaluate,
    experiment_row,
    finetune_layers,
    finetune_lora,
    recommend,
    result_rows,
)


def evaluation(dress_correct: int, shirt_correct: int = 10) -> dict:
    """An `evaluate` dict on 10 images per class: Dress and Shirt get the given number right
    (misses go to class 0), every other class is perfect."""
    y = torch.arange(10).repeat_interleave(10)
    pred = y.clone()
    pred[30 + dress_correct : 40] = 0
    pred[60 + shirt_correct : 70] = 0
    return evaluate(y, pred)


def test_row_has_exactly_the_fields_and_the_worst_drop():
    base = evaluation(8)
    after = evaluation(10, shirt_correct=7)
    row = experiment_row("x", "lora", after, base, rank=2, alpha=4, scaling="alpha/r", dress_weight=3.0,
                         layers=("linear3",), trainable_params=2020, seconds=1.5)
    assert tuple(row) == EXPERIMENT_FIELDS
    assert row["dress_recall"] == 1.0 and row["layers"] == ["linear3"]
    drop = base["per_class"][CLASSES[6]]["f1"] - after["per_class"]["Shirt"]["f1"]
    assert row["worst_other_f1_drop"] == pytest.approx(drop) and drop > 0
    same = experiment_row("b", "baseline", base, base)
    assert same["worst_other_f1_drop"] == 0 and str(same["worst_other_f1_drop"]) == "0.0"  # not -0.0
    assert same["rank"] is None and same["layers"] == [] and same["trainable_params"] == 0


def rows(*specs) -> list[dict]:
    """Validation rows from (name, method, accuracy, dress_f1, trainable_params)."""
    return [{"name": n, "method": m, "accuracy": a, "dress_f1": f, "trainable_params": p}
            for n, m, a, f, p in specs]


def test_recommend_keeps_accuracy_and_prefers_fewer_parameters_within_the_tolerance():
    val = rows(("baseline", "baseline", 0.900, 0.90, 0), ("big", "full", 0.899, 0.912, 900_000),
               ("small", "lora", 0.900, 0.910, 3_000), ("lossy", "lora", 0.880, 0.95, 3_000),
               ("bias", "logit bias", 0.901, 0.909, 0))
    assert recommend(val)["name"] == "big"  # best F1 among rows that keep accuracy; "lossy" is out
    assert recommend(val, f1_tolerance=0.0025)["name"] == "small"
    assert recommend(val, f1_tolerance=0.005)["name"] == "bias"
    assert recommend(val, methods=["lora"])["name"] == "small"
    assert recommend(val, max_accuracy_drop=0.05, methods=["lora"])["name"] == "lossy"


def test_recommend_refuses_without_one_baseline_or_candidates():
    with pytest.raises(ParameterError, match="exactly one row with method 'baseline'"):
        recommend(rows(("a", "lora", 0.9, 0.9, 1)))
    with pytest.raises(ParameterError, match="no row"):
        recommend(rows(("baseline", "baseline", 0.9, 0.9, 0), ("a", "lora", 0.8, 0.95, 1)), methods=["lora"])


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 20, generator=g)

    def split(n):
        y = torch.arange(n) % 10
        return centres[y] + 1.2 * torch.randn(n, 20, generator=g), y

    data = FashionMNIST(*split(1000), *split(300), *split(300), source="synthetic")
    torch.manual_seed(0)
    return DeepNN(20, 16, 24).eval(), data


def test_result_rows_read_the_settings_from_the_recipe(toy):
    base, data = toy
    base_val, base_test = (evaluate(y, base(x).argmax(1)) for x, y in ((data.val_x, data.val_y),
                                                                       (data.test_x, data.test_y)))
    lora = finetune_lora(base, data, rank=2, alpha=4, rslora=True, targets=["linear2"], epochs=1,
                         progress=False)
    val, test = result_rows("l", "lora", lora, base_val, base_test)
    assert (test["rank"], test["alpha"], test["scaling"]) == (2, 4, "alpha/sqrt(r)")
    assert test["layers"] == ["linear2"]
    assert test["trainable_params"] == 2 * (16 + 24) and test["dress_weight"] == 3.0
    assert test["accuracy"] == lora.test["accuracy"] and val["accuracy"] == lora.val["accuracy"]
    head = finetune_layers(base, data, ["linear3"], class_weight=2.0, epochs=1, progress=False)
    _, test = result_rows("h", "head-only", head, base_val, base_test)
    assert (test["rank"], test["scaling"], test["dress_weight"]) == (None, None, 2.0)
    assert test["layers"] == ["linear3"]
    assert test["trainable_params"] == 24 * 10 + 10
