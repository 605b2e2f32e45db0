"""DeepNN's shape and size, fit's determinism, checkpoints' round trip and refusals."""

from __future__ import annotations

import pytest
import torch

from lorafm_helpers import (
    DeepNN,
    count_parameters,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    set_seed,
)


def toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 784, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def test_deepnn_shape_names_and_count():
    model = DeepNN()
    assert [n for n, _ in model.named_children()] == ["linear1", "relu", "linear2", "linear3"]
    assert count_parameters(model) == 903_510
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)


def train_once(seed):
    x, y = toy_data()
    set_seed(seed)
    model = DeepNN()
    history = fit(model, x, y, epochs=2, batch_size=32, lr=1e-3, val=(x, y), seed=seed, progress=False)
    return model, history


def test_fit_is_deterministic_and_learns():
    a, history_a = train_once(0)
    b, history_b = train_once(0)
    c, _ = train_once(1)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert not torch.equal(a.linear1.weight, c.linear1.weight)
    assert [h["train_loss"] for h in history_a] == [h["train_loss"] for h in history_b]
    assert history_a[1]["train_loss"] < history_a[0]["train_loss"]
    assert set(history_a[0]) == {"epoch", "train_loss", "val_accuracy", "lr", "seconds"}


def test_fit_cosine_ends_at_zero_and_class_weights_change_training():
    x, y = toy_data()
    set_seed(0)
    plain = DeepNN()
    history = fit(plain, x, y, epochs=1, batch_size=64, progress=False)
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    set_seed(0)
    weighted = DeepNN()
    weights = torch.ones(10)
    weights[3] = 3.0
    fit(weighted, x, y, epochs=1, batch_size=64, class_weights=weights, progress=False)
    assert not torch.equal(plain.linear3.weight, weighted.linear3.weight)


def test_fit_refuses_nothing_to_train_and_bad_arguments():
    x, y = toy_data(32)
    model = DeepNN().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, x, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs >= 1"):
        fit(DeepNN(), x, y, epochs=0, progress=False)


def test_predict_batches_and_restores_mode():
    x, _ = toy_data(100)
    model = DeepNN().train()
    logits = predict(model, x, batch_size=7)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    model = DeepNN()
    path = save_checkpoint(model, tmp_path / "sub" / "model.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left
    restored = DeepNN()
    state = load_checkpoint(path, restored)
    assert list(state)[:2] == ["linear1.weight", "linear1.bias"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key])


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    path = save_checkpoint(DeepNN(hidden1=64), tmp_path / "small.pt")
    model = DeepNN()
    before = model.linear1.weight.clone()
    with pytest.raises(ValueError, match=r"linear1.weight: checkpoint \(64, 784\) vs model \(500, 784\)"):
        load_checkpoint(path, model)
    assert torch.equal(model.linear1.weight, before)  # nothing half-loaded


def test_missing_checkpoint_says_how_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_baseline_training"):
        load_checkpoint(tmp_path / "absent.pt")
