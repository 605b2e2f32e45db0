"""Chapter 04 executed with papermill at its defaults: the Dress recipe's targets, from its JSON."""

from __future__ import annotations

import pytest
import torch

from lorafm_helpers import (
    CLASSES,
    DeepNN,
    load_adapter,
    load_checkpoint,
    load_fashion_mnist,
    predict,
    read_metrics_json,
)

STEM = "04_oversampling_and_weighted_loss"


@pytest.fixture(scope="module")
def metrics(series) -> dict:
    series.run(STEM)
    return read_metrics_json(series.artifacts / "lora_metrics.json")


def dress(evaluation: dict) -> dict:
    return evaluation["per_class"]["Dress"]


def test_baseline_is_well_trained(metrics):
    assert metrics["baseline"]["accuracy"] >= 0.895


def test_recipe_raises_dress_recall(metrics):
    assert dress(metrics["lora"])["recall"] >= 0.93
    assert dress(metrics["lora"])["recall"] >= dress(metrics["baseline"])["recall"] + 0.03


def test_recipe_keeps_dress_precision_and_accuracy(metrics):
    assert dress(metrics["lora"])["precision"] >= 0.82
    assert metrics["baseline"]["accuracy"] - metrics["lora"]["accuracy"] <= 0.005


def test_no_other_class_forgets(metrics):
    drops = {c: metrics["baseline"]["per_class"][c]["f1"] - metrics["lora"]["per_class"][c]["f1"]
             for c in CLASSES if c != "Dress"}
    assert max(drops.values()) <= 0.02, drops


def test_trainable_parameters_and_default_recipe(metrics):
    assert metrics["trainable_params"] == 30_352
    recipe = metrics["recipe"]
    assert (recipe["rank"], recipe["alpha"], recipe["targets"]) == (8, 16, ["linear1", "linear2", "linear3"])
    assert (recipe["oversample_factor"], recipe["class_weight"], recipe["epochs"]) == (3, 3.0, 2)
    assert recipe["train_images"] == 55_000 + 2 * 5_500
    assert len(metrics["history"]) == 2


def test_logit_bias_is_chosen_on_validation_to_match_the_recipe(metrics):
    bias, validation = metrics["logit_bias"], metrics["validation"]
    assert bias["chosen_on"] == "validation"
    assert bias["target_recall"] == dress(validation["lora"])["recall"]
    assert dress(validation["logit_bias"])["recall"] >= bias["target_recall"]
    assert bias["bias"] > 0
    # the bias leaves every non-Dress decision between other classes alone: accuracy barely moves
    assert abs(bias["accuracy"] - metrics["baseline"]["accuracy"]) <= 0.005


def test_ablation_has_four_variants_and_the_recipe_row_is_the_recipe(metrics):
    rows = {row["variant"]: row for row in metrics["ablation"]}
    assert list(rows) == ["plain LoRA", "oversampling only", "weight only", "both (the recipe)"]
    recipe = rows["both (the recipe)"]
    assert recipe["recall"] == dress(metrics["lora"])["recall"]
    assert recipe["accuracy"] == metrics["lora"]["accuracy"]
    # plain LoRA on balanced data favours Dress less than the recipe does
    assert rows["plain LoRA"]["recall"] < recipe["recall"]


def test_original_writeup_numbers_are_the_published_ones(metrics):
    original = metrics["original_writeup"]
    assert original["accuracy"] == 0.848
    assert original["per_class"]["Dress"] == {"precision": 0.81, "recall": 0.92, "f1": 0.86}
    assert original["dress_before"] == {"precision": 0.71, "recall": 0.94}
    assert original["per_class"]["T-shirt/top"] == {"precision": 0.75, "recall": 0.87, "f1": 0.81}
    assert original["per_class"]["Trouser"] == {"precision": 0.98, "recall": 0.96, "f1": 0.97}


def test_chapter_runs_within_three_minutes(metrics):
    assert metrics["seconds"] <= 180


def test_adapter_loads_in_peft_and_gives_the_reported_accuracy(series, metrics):
    from peft import PeftModel

    data = load_fashion_mnist()
    base = DeepNN()
    load_checkpoint(series.artifacts / "baseline.pt", base)
    peft_model = PeftModel.from_pretrained(base, str(series.artifacts / "dress_adapter")).eval()
    peft_pred = predict(peft_model, data.test_x).argmax(1)
    assert (peft_pred == data.test_y).float().mean().item() == pytest.approx(metrics["lora"]["accuracy"],
                                                                              abs=1e-4)
    fresh = DeepNN()
    load_checkpoint(series.artifacts / "baseline.pt", fresh)
    ours = load_adapter(fresh, series.artifacts / "dress_adapter")
    assert torch.equal(predict(ours, data.test_x).argmax(1), peft_pred)
