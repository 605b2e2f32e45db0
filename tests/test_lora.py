"""The LoRA layer, apply_lora, the parameter report and adapter files: behaviour and refusals."""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lorafm_helpers import (
    AdapterMismatchError,
    AdapterNotFoundError,
    DeepNN,
    LoRAConfigError,
    LorafmError,
    LoRALayer,
    LoRAStateError,
    apply_lora,
    base_weights_sha256,
    break_even_rank,
    load_adapter,
    lora_layers,
    merge_and_unload,
    save_adapter,
    trainable_parameters_report,
)

LAYERS = {"linear1": (784, 500), "linear2": (500, 1000), "linear3": (1000, 10)}


def base_model(seed: int = 0) -> DeepNN:
    torch.manual_seed(seed)
    return DeepNN().eval()


def randomise_lora(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every B a non-zero value, as training would, so the update is visible."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.05)
    return model


def lora_model(rank: int = 8, alpha: float = 16, seed: int = 0, **kwargs) -> DeepNN:
    return randomise_lora(apply_lora(base_model(seed), rank=rank, alpha=alpha, **kwargs))


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(32, 784, generator=torch.Generator().manual_seed(7))


# --- the layer -------------------------------------------------------------------------------

def test_shapes_init_and_scaling():
    torch.manual_seed(0)
    layer = LoRALayer(nn.Linear(500, 1000), rank=8, alpha=16)
    assert layer.lora_A.shape == (8, 500) and layer.lora_B.shape == (1000, 8)
    assert isinstance(layer.lora_A, nn.Parameter) and isinstance(layer.lora_B, nn.Parameter)
    assert torch.count_nonzero(layer.lora_B) == 0
    bound = 1 / math.sqrt(500)  # kaiming_uniform(a=sqrt(5)) on fan_in 500
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.9 * bound
    assert layer.scaling == 2.0 and not layer.merged
    assert (layer.in_features, layer.out_features, layer.rank, layer.alpha) == (500, 1000, 8, 16.0)
    assert LoRALayer(nn.Linear(500, 1000), rank=16, alpha=16, rslora=True).scaling == 4.0


def test_a_is_drawn_like_peft_from_the_same_seed():
    torch.manual_seed(3)
    layer = LoRALayer(nn.Linear(20, 30), rank=4, alpha=8)
    torch.manual_seed(3)
    nn.Linear(20, 30)
    expected = torch.empty(4, 20)
    nn.init.kaiming_uniform_(expected, a=math.sqrt(5))
    assert torch.equal(layer.lora_A, expected)


def test_wrapped_layer_is_frozen_and_only_a_b_train():
    layer = LoRALayer(nn.Linear(10, 6), rank=2, alpha=4)
    assert not any(p.requires_grad for p in layer.original_layer.parameters())
    assert {n for n, p in layer.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}


def test_zero_update_at_step_zero(x):
    base = base_model()
    wrapped = apply_lora(copy.deepcopy(base))
    assert torch.equal(wrapped(x), base(x))


def test_forward_is_base_plus_scaled_low_rank_update(x):
    torch.manual_seed(0)
    linear = nn.Linear(784, 500)
    layer = LoRALayer(copy.deepcopy(linear), rank=4, alpha=12)
    with torch.no_grad():
        layer.lora_B.normal_()
    expected = linear(x) + 3.0 * (x @ layer.lora_A.T @ layer.lora_B.T)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(layer.delta_weight(), 3.0 * layer.lora_B @ layer.lora_A)
    with torch.no_grad():
        merged_weight = linear.weight + layer.delta_weight()
    torch.testing.assert_close(layer(x), nn.functional.linear(x, merged_weight, linear.bias),
                               rtol=0, atol=1e-4)


class RecordShapes(TorchDispatchMode):
    """Shapes of the results of the arithmetic ops (not views) run inside the block."""

    ARITHMETIC = {"mm", "addmm", "bmm", "matmul", "mul", "add"}

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in self.ARITHMETIC and isinstance(out, torch.Tensor):
            self.shapes.append(tuple(out.shape))
        return out


def test_forward_never_builds_the_full_update():
    layer = LoRALayer(nn.Linear(64, 48), rank=4, alpha=8)
    with RecordShapes() as recorder:
        layer(torch.randn(5, 64))
    assert (48, 64) not in recorder.shapes and (64, 48) not in recorder.shapes
    assert (5, 4) in recorder.shapes  # x A^T, the thin intermediate


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_delta_weight_rank_is_at_most_r(rank):
    layer = LoRALayer(nn.Linear(100, 60), rank=rank, alpha=2 * rank)
    with torch.no_grad():
        layer.lora_B.normal_()
    delta = layer.delta_weight()
    assert delta.shape == (60, 100)
    assert torch.linalg.matrix_rank(delta) == rank


def test_gradients_reach_only_a_and_b(x):
    model = lora_model()
    model.train()
    nn.functional.cross_entropy(model(x), torch.arange(32) % 10).backward()
    for name, p in model.named_parameters():
        if name.endswith(("lora_A", "lora_B")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name  # frozen: autograd never computes this gradient


def test_dropout_applies_to_the_lora_path_in_training_only(x):
    layer = LoRALayer(nn.Linear(784, 20), rank=4, alpha=8, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    assert isinstance(LoRALayer(nn.Linear(5, 5), 1, 1).dropout, nn.Identity)


def test_float64_layer_keeps_its_dtype():
    layer = LoRALayer(nn.Linear(10, 6).double(), rank=2, alpha=4)
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float64
    assert layer(torch.randn(3, 10, dtype=torch.float64)).dtype == torch.float64


# --- merge / unmerge -------------------------------------------------------------------------

def test_merged_equals_unmerged_in_eval_within_1e_5(x):
    model = lora_model()
    expected = model(x)
    weights = {n: m.original_layer.weight.clone() for n, m in lora_layers(model).items()}
    for layer in lora_layers(model).values():
        layer.merge()
        assert layer.merged
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-5)
    for name, layer in lora_layers(model).items():
        torch.testing.assert_close(layer.original_layer.weight, weights[name] + layer.delta_weight(),
                                   rtol=0, atol=1e-6)
        layer.unmerge()
        assert not layer.merged
        assert torch.equal(layer.original_layer.weight, weights[name])  # restored bit for bit
    assert torch.equal(model(x), expected)


def test_merged_forward_is_the_plain_linear(x):
    layer = LoRALayer(nn.Linear(784, 20), rank=4, alpha=8)
    with torch.no_grad():
        layer.lora_B.normal_()
    layer.merge()
    with RecordShapes() as recorder:
        out = layer(x)
    assert (32, 4) not in recorder.shapes  # the low-rank path did not run
    assert torch.equal(out, layer.original_layer(x))


def test_merging_twice_and_unmerging_unmerged_are_refused():
    layer = LoRALayer(nn.Linear(10, 6), rank=2, alpha=4)
    with pytest.raises(LoRAStateError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(LoRAStateError, match="already merged"):
        layer.merge()
    assert isinstance(LoRAStateError("x"), LorafmError)


def test_merge_and_unload_gives_back_a_plain_model(x):
    model = lora_model()
    expected = model(x)
    model.linear2.merge()  # already merged layers are folded too
    assert merge_and_unload(model) is model
    assert not lora_layers(model)
    assert all(type(m) is nn.Linear for m in (model.linear1, model.linear2, model.linear3))
    assert set(model.state_dict()) == set(base_model().state_dict())
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-5)
    with pytest.raises(LoRAConfigError, match="no LoRA layers"):
        merge_and_unload(model)


# --- refusals of the layer and of apply_lora -------------------------------------------------

@pytest.mark.parametrize("rank", [0, -1, 2.5, True, "8", None])
def test_rank_must_be_a_positive_integer(rank):
    with pytest.raises(LoRAConfigError, match="rank must be a positive integer"):
        LoRALayer(nn.Linear(10, 6), rank=rank, alpha=4)
    with pytest.raises(LoRAConfigError, match="rank must be a positive integer"):
        apply_lora(base_model(), rank=rank)


def test_rank_above_min_in_out_is_allowed_with_a_warning():
    with pytest.warns(UserWarning, match=r"rank 7 is above min\(in, out\) = 6"):
        LoRALayer(nn.Linear(10, 6), rank=7, alpha=4)
    with pytest.warns(UserWarning, match=r"rank 16 is above min\(in, out\) = 10") as record:
        model = apply_lora(base_model(), rank=16)
    assert len(record) == 1  # linear3 only
    assert model.linear3.lora_B.shape == (10, 16)  # as peft does: counts stay 3,794 * r
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_lora(base_model(), ["linear3"], rank=10)


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), True, "16"])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(LoRAConfigError, match="alpha must be a finite number > 0"):
        LoRALayer(nn.Linear(10, 6), rank=2, alpha=alpha)
    with pytest.raises(LoRAConfigError, match="alpha"):
        apply_lora(base_model(), alpha=alpha)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 2])
def test_dropout_must_lie_in_0_1(dropout):
    with pytest.raises(LoRAConfigError, match="dropout"):
        LoRALayer(nn.Linear(10, 6), rank=2, alpha=4, dropout=dropout)


def test_layer_refuses_non_linear_and_double_wrapping():
    with pytest.raises(LoRAConfigError, match="wraps an nn.Linear, got Conv1d"):
        LoRALayer(nn.Conv1d(3, 3, 1), rank=1, alpha=1)
    layer = LoRALayer(nn.Linear(10, 6), rank=2, alpha=4)
    with pytest.raises(LoRAConfigError, match="already a LoRALayer"):
        LoRALayer(layer, rank=2, alpha=4)


def test_unknown_target_lists_the_linear_layers():
    model = base_model()
    with pytest.raises(LoRAConfigError, match=r"no layer named 'linear4'.*'linear1', 'linear2', 'linear3'"):
        apply_lora(model, ["linear1", "linear4"])
    assert not lora_layers(model)


def test_non_linear_target_is_refused():
    with pytest.raises(LoRAConfigError, match="'relu' is a LeakyReLU, not an nn.Linear"):
        apply_lora(base_model(), ["relu"])


def test_wrapping_twice_is_refused():
    model = apply_lora(base_model(), ["linear1"])
    with pytest.raises(LoRAConfigError, match=r"already has LoRA layers \(linear1\)"):
        apply_lora(model, ["linear2"])
    with pytest.raises(LoRAConfigError, match="already has LoRA layers"):
        apply_lora(model, ["linear1"])


@pytest.mark.parametrize("targets", [[], ("linear1", "linear1")])
def test_empty_or_repeated_targets_are_refused(targets):
    with pytest.raises(LoRAConfigError, match="empty|twice"):
        apply_lora(base_model(), targets)


def test_errors_are_lorafm_errors_and_value_errors():
    for cls in (LoRAConfigError, AdapterMismatchError):
        assert issubclass(cls, LorafmError) and issubclass(cls, ValueError)
    assert issubclass(AdapterNotFoundError, FileNotFoundError)


# --- apply_lora and the parameter report -----------------------------------------------------

def test_apply_lora_wraps_in_place_and_freezes_the_rest():
    model = base_model()
    linear2 = model.linear2
    assert apply_lora(model) is model
    assert model.linear2.original_layer is linear2
    assert set(lora_layers(model)) == set(LAYERS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{layer}.lora_{ab}" for layer in LAYERS for ab in "AB"}


def test_apply_lora_on_some_layers_and_a_single_name():
    model = apply_lora(base_model(), "linear3", rank=2, alpha=4)
    assert list(lora_layers(model)) == ["linear3"]
    assert not model.linear1.weight.requires_grad  # untargeted layers are frozen too
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 1010


def test_report_at_rank_8_matches_the_reference_numbers():
    table, summary = trainable_parameters_report(apply_lora(base_model()))
    assert summary == "trainable params: 30,352 || all params: 933,862 || trainable%: 3.2502"
    assert list(table.columns) == ["layer", "in", "out", "rank", "frozen params", "trainable params",
                                   "LoRA params", "break-even rank"]
    rows = table.set_index("layer")
    for name, (fan_in, fan_out) in LAYERS.items():
        assert rows.loc[name, "frozen params"] == fan_in * fan_out + fan_out
        assert rows.loc[name, "LoRA params"] == rows.loc[name, "trainable params"] == 8 * (fan_in + fan_out)
        assert rows.loc[name, "break-even rank"] == pytest.approx(fan_in * fan_out / (fan_in + fan_out))
    assert table["frozen params"].sum() == 903_510


@pytest.mark.parametrize("rank", [1, 2, 4, 16, 32])
def test_trainable_count_is_3794_times_rank(rank):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, summary = trainable_parameters_report(apply_lora(base_model(), rank=rank, alpha=2 * rank))
    assert summary.startswith(f"trainable params: {3794 * rank:,} || all params: {903_510 + 3794 * rank:,}")


def test_report_warns_from_the_break_even_rank():
    assert break_even_rank(1000, 10) == pytest.approx(9.90099, abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainable_parameters_report(apply_lora(base_model(), rank=9))
    with pytest.warns(UserWarning, match=r"linear3: rank 10 reaches its break-even rank 9\.9") as record:
        trainable_parameters_report(apply_lora(base_model(), rank=10))
    assert len(record) == 1  # linear1 and linear2 break even only near rank 300


def test_report_of_a_plain_model():
    table, summary = trainable_parameters_report(base_model())
    assert summary == "trainable params: 903,510 || all params: 903,510 || trainable%: 100.0000"
    assert (table["rank"] == 0).all() and (table["frozen params"] == 0).all()


# --- base-weight hash ------------------------------------------------------------------------

def test_base_hash_ignores_lora_and_merging_but_sees_any_weight_change():
    base = base_model()
    digest = base_weights_sha256(base)
    model = lora_model(seed=0)
    assert base_weights_sha256(model) == digest
    for layer in lora_layers(model).values():
        layer.merge()
    assert base_weights_sha256(model) == digest
    assert base_weights_sha256(base_model(seed=1)) != digest
    with torch.no_grad():
        base.linear3.bias[0] += 1e-6
    assert base_weights_sha256(base) != digest


# --- adapters --------------------------------------------------------------------------------

def test_save_writes_peft_keys_config_and_base_hash(tmp_path):
    model = lora_model()
    assert save_adapter(model, tmp_path / "adapter") == tmp_path / "adapter"
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors"]  # no temporary files left
    with safe_open(tmp_path / "adapter" / "adapter_model.safetensors", framework="pt") as f:
        keys, metadata = sorted(f.keys()), f.metadata()
        assert torch.equal(f.get_tensor("base_model.model.linear2.lora_B.weight"), model.linear2.lora_B)
    assert keys == sorted(f"base_model.model.{n}.lora_{ab}.weight" for n in LAYERS for ab in "AB")
    assert metadata["lorafm_base_sha256"] == base_weights_sha256(base_model())
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16
    assert config["target_modules"] == ["linear1", "linear2", "linear3"]
    assert config["lora_dropout"] == 0.0 and config["use_rslora"] is False


@pytest.mark.parametrize("rslora", [False, True])
def test_round_trip_into_the_plain_base(tmp_path, x, rslora):
    model = lora_model(rank=4, alpha=6, rslora=rslora)
    save_adapter(model, tmp_path)
    loaded = load_adapter(base_model(), tmp_path)
    assert torch.equal(loaded(x), model(x))
    assert all(m.rslora == rslora and m.rank == 4 for m in lora_layers(loaded).values())


def test_round_trip_into_an_already_wrapped_base(tmp_path, x):
    model = lora_model()
    save_adapter(model, tmp_path)
    target = apply_lora(base_model())
    assert load_adapter(target, tmp_path) is target
    assert torch.equal(target(x), model(x))


def test_saving_needs_lora_layers_with_one_setting(tmp_path):
    with pytest.raises(LoRAConfigError, match="no LoRA layers"):
        save_adapter(base_model(), tmp_path)
    model = base_model()
    model.linear1 = LoRALayer(model.linear1, rank=2, alpha=4)
    model.linear3 = LoRALayer(model.linear3, rank=4, alpha=4)
    with pytest.raises(LoRAConfigError, match="differ in"):
        save_adapter(model, tmp_path)


def test_other_base_is_refused_before_anything_changes(tmp_path):
    save_adapter(lora_model(seed=0), tmp_path)
    other = base_model(seed=1)
    with pytest.raises(AdapterMismatchError, match="other base weights"):
        load_adapter(other, tmp_path)
    assert not lora_layers(other)


def rewrite(tmp_path, edit) -> None:
    """Load the adapter file's tensors, let `edit` change the dict, write it back (hash kept)."""
    file = tmp_path / "adapter_model.safetensors"
    with safe_open(file, framework="pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    edit(tensors)
    save_file(tensors, file, metadata=metadata)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    save_adapter(lora_model(), tmp_path)
    rewrite(tmp_path, lambda t: t.pop("base_model.model.linear2.lora_A.weight"))
    with pytest.raises(AdapterMismatchError, match="missing base_model.model.linear2.lora_A.weight"):
        load_adapter(base_model(), tmp_path)
    save_adapter(lora_model(), tmp_path)
    rewrite(tmp_path, lambda t: t.update({"base_model.model.linear9.lora_A.weight": torch.zeros(1)}))
    with pytest.raises(AdapterMismatchError, match="unexpected base_model.model.linear9.lora_A.weight"):
        load_adapter(base_model(), tmp_path)


def test_rank_mismatch_in_the_file_is_refused(tmp_path):
    save_adapter(lora_model(rank=8), tmp_path)
    rewrite(tmp_path, lambda t: t.update({"base_model.model.linear1.lora_A.weight": torch.zeros(4, 784)}))
    with pytest.raises(AdapterMismatchError, match=r"linear1.lora_A has shape \(4, 784\).*need \(8, 784\)"):
        load_adapter(base_model(), tmp_path)


def test_adapter_that_does_not_fit_the_wrapped_model_is_refused(tmp_path):
    save_adapter(lora_model(rank=8), tmp_path)
    with pytest.raises(AdapterMismatchError, match="r: adapter 8 vs model 4"):
        load_adapter(apply_lora(base_model(), rank=4), tmp_path)
    with pytest.raises(AdapterMismatchError, match="targets"):
        load_adapter(apply_lora(base_model(), ["linear3"]), tmp_path)


def test_loading_into_a_merged_model_is_refused(tmp_path):
    save_adapter(lora_model(), tmp_path)
    target = apply_lora(base_model())
    target.linear1.merge()
    with pytest.raises(LoRAStateError, match="unmerge"):
        load_adapter(target, tmp_path)


def test_missing_files_and_corrupt_files(tmp_path):
    with pytest.raises(AdapterNotFoundError, match="no adapter_config.json"):
        load_adapter(base_model(), tmp_path / "nowhere")
    save_adapter(lora_model(), tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterMismatchError, match="not a readable safetensors file"):
        load_adapter(base_model(), tmp_path)
    (tmp_path / "adapter_config.json").write_text("{broken")
    with pytest.raises(AdapterMismatchError, match="not valid JSON"):
        load_adapter(base_model(), tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"peft_type": "IA3"}, "not a LoRA one"),
    ({"target_modules": "linear.*"}, "list of layer names"),
    ({"rank_pattern": {"linear3": 2}}, "per-layer"),
    ({"lora_alpha": -1}, "invalid config: alpha"),
])
def test_configs_load_adapter_cannot_honour_are_refused(tmp_path, change, message):
    save_adapter(lora_model(), tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, **change}))
    model = base_model()
    with pytest.raises(AdapterMismatchError, match=message):
        load_adapter(model, tmp_path)
    assert not lora_layers(model)


def test_adapter_without_a_base_hash_loads_with_a_warning(tmp_path, x):
    model = lora_model()
    save_adapter(model, tmp_path)
    file = tmp_path / "adapter_model.safetensors"
    with safe_open(file, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, file, metadata={"format": "pt"})
    with pytest.warns(UserWarning, match="no base-weight SHA-256"):
        loaded = load_adapter(base_model(), tmp_path)
    assert torch.equal(loaded(x), model(x))
