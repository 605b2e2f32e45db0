"""The fine-tuning recipe on a small synthetic 10-class problem: weights, oversampling, LoRA."""

from __future__ import annotations

import copy

import pytest
import torch

from lorafm_helpers import (
    DRESS,
    DeepNN,
    FashionMNIST,
    LoRALayer,
    ParameterError,
    class_weights,
    count_parameters,
    fit,
    predict,
    set_seed,
)
from lorafm_helpers.finetune import f1_changes, finetune, finetune_layers, finetune_lora

FEATURES, HIDDEN1, HIDDEN2 = 20, 16, 24


def toy_data(n_train: int = 2000, n_eval: int = 500, seed: int = 0) -> FashionMNIST:
    """Ten overlapping Gaussian blobs in 20 dimensions: hard enough that errors remain."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, FEATURES, generator=g)

    def split(n):
        y = torch.arange(n) % 10
        return centres[y] + 1.2 * torch.randn(n, FEATURES, generator=g), y

    (tx, ty), (vx, vy), (sx, sy) = split(n_train), split(n_eval), split(n_eval)
    return FashionMNIST(tx, ty, vx, vy, sx, sy, source="synthetic")


@pytest.fixture(scope="module")
def toy():
    data = toy_data()
    set_seed(0)
    baseline = DeepNN(FEATURES, HIDDEN1, HIDDEN2)
    fit(baseline, data.train_x, data.train_y, epochs=5, lr=3e-3, progress=False)
    return baseline, data


def test_class_weights_vector():
    weights = class_weights(DRESS, 3.0)
    assert weights.shape == (10,)
    assert weights[DRESS] == 3.0
    assert weights.sum() == pytest.approx(12.0)
    with pytest.raises(ParameterError, match="weight must be"):
        class_weights(DRESS, 0.0)
    with pytest.raises(ParameterError, match="cls must be"):
        class_weights(10, 3.0)


def test_finetune_lora_trains_a_copy_and_measures_it(toy):
    baseline, data = toy
    before = copy.deepcopy(baseline.state_dict())
    result = finetune_lora(baseline, data, rank=2, alpha=4, epochs=2, progress=False)
    # The baseline is untouched; the result wraps every target and only LoRA trains.
    assert all(torch.equal(before[k], v) for k, v in baseline.state_dict().items())
    assert all(isinstance(getattr(result.model, n), LoRALayer) for n in ("linear1", "linear2", "linear3"))
    expected = 2 * ((FEATURES + HIDDEN1) + (HIDDEN1 + HIDDEN2) + (HIDDEN2 + 10))
    assert result.trainable_params == expected == count_parameters(result.model, trainable_only=True)
    assert result.model.linear3.original_layer.weight.equal(baseline.linear3.weight)
    assert len(result.history) == 2
    # 3x oversampling of a 200-image class adds 400 images.
    assert result.recipe["train_images"] == 2000 + 2 * 200
    assert result.recipe | {"rank": 2, "alpha": 4, "class_weight": 3.0} == result.recipe
    # The reported metrics are the model's own.
    test_pred = predict(result.model, data.test_x).argmax(1)
    assert result.test["accuracy"] == pytest.approx(float((test_pred == data.test_y).float().mean()))


def test_recipe_pushes_predictions_toward_dress(toy):
    baseline, data = toy
    plain = finetune_lora(baseline, data, oversample_factor=1, class_weight=1.0, lr=3e-3, epochs=3,
                          progress=False)
    recipe = finetune_lora(baseline, data, oversample_factor=3, class_weight=3.0, lr=3e-3, epochs=3,
                           progress=False)

    def dress_predictions(result):
        return int((predict(result.model, data.val_x).argmax(1) == DRESS).sum())

    assert dress_predictions(recipe) > dress_predictions(plain)
    assert recipe.summary()["val_recall"] > plain.summary()["val_recall"]


def test_finetune_trains_whatever_is_trainable(toy):
    baseline, data = toy
    head_only = copy.deepcopy(baseline).requires_grad_(False)
    head_only.linear3.requires_grad_(True)
    first = head_only.linear1.weight.clone()
    result = finetune(head_only, data, epochs=1, progress=False)
    assert result.trainable_params == HIDDEN2 * 10 + 10
    assert head_only.linear1.weight.equal(first)
    assert not head_only.linear3.weight.equal(baseline.linear3.weight)


def test_same_seed_same_numbers(toy):
    baseline, data = toy
    a = finetune_lora(baseline, data, epochs=1, progress=False)
    b = finetune_lora(baseline, data, epochs=1, progress=False)
    assert a.test == b.test


def test_summary_and_forgetting(toy):
    baseline, data = toy
    result = finetune_lora(baseline, data, epochs=1, progress=False)
    from lorafm_helpers import evaluate

    base_test = evaluate(data.test_y, predict(baseline, data.test_x).argmax(1))
    row = result.summary(base_test)
    assert row["class"] == "Dress"
    assert row["recall"] == result.test["per_class"]["Dress"]["recall"]
    assert row["accuracy_change"] == pytest.approx(result.test["accuracy"] - base_test["accuracy"])
    changes = f1_changes(base_test, result.test)
    assert "Dress" not in changes.index and len(changes) == 9
    assert row["worst_other_f1_change"] == changes.min()
    assert row["worst_other_class"] == changes.idxmin()
    assert len(f1_changes(base_test, result.test, cls=None)) == 10


@pytest.mark.parametrize("kwargs, message", [
    ({"oversample_factor": 0}, "oversample_factor"),
    ({"oversample_factor": 2.5}, "oversample_factor"),
    ({"class_weight": -1.0}, "weight must be"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
])
def test_bad_settings_are_refused_before_training(toy, kwargs, message):
    baseline, data = toy
    with pytest.raises(ParameterError, match=message):
        finetune_lora(baseline, data, progress=False, **kwargs)


def test_frozen_model_is_refused(toy):
    baseline, data = toy
    frozen = copy.deepcopy(baseline).requires_grad_(False)
    with pytest.raises(ParameterError, match="no trainable parameters"):
        finetune(frozen, data, progress=False)


def test_finetune_layers_trains_only_the_named_layers_of_a_copy(toy):
    baseline, data = toy
    before = copy.deepcopy(baseline.state_dict())
    result = finetune_layers(baseline, data, ["linear3"], epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in baseline.state_dict().items())
    assert result.trainable_params == HIDDEN2 * 10 + 10 and result.recipe["layers"] == ["linear3"]
    assert result.model.linear1.weight.equal(baseline.linear1.weight)
    assert not result.model.linear3.weight.equal(baseline.linear3.weight)
    full = finetune_layers(baseline, data, ["linear1", "linear2", "linear3"], epochs=1, progress=False)
    assert full.trainable_params == count_parameters(baseline)
    with pytest.raises(ParameterError, match="layers must name layers"):
        finetune_layers(baseline, data, ["linear9"], progress=False)
