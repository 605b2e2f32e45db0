"""The helper's LoRA against peft's: same outputs, same gradients, same counts, shared adapter files."""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from torch import nn

from lorafm_helpers import (
    DeepNN,
    apply_lora,
    load_adapter,
    lora_layers,
    save_adapter,
    trainable_parameters_report,
)

CASES = [  # (targets, rank, alpha, rslora)
    (("linear1", "linear2", "linear3"), 8, 16, False),
    (("linear1", "linear2", "linear3"), 4, 4, True),
    (("linear2",), 2, 8, False),
    (("linear3",), 16, 16, False),  # above linear3's min(in, out) = 10, as the rank sweep goes
]


def twins(targets, rank, alpha, rslora, seed=0) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The base, the helper's LoRA model and peft's, with the same (non-zero) A and B."""
    torch.manual_seed(seed)
    base = DeepNN().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank above min(in, out)
        ours = apply_lora(copy.deepcopy(base), targets, rank, alpha, rslora=rslora)
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, use_rslora=rslora))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            layer.lora_B.normal_(0, 0.05, generator=generator)
            peft_layer = theirs.base_model.model.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    return base, ours, theirs.eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("targets, rank, alpha, rslora", CASES)
def test_outputs_and_gradients_match_peft(targets, rank, alpha, rslora, x):
    _, ours, theirs = twins(targets, rank, alpha, rslora)
    y = torch.arange(64) % 10
    out_ours, out_theirs = ours(x), theirs(x)
    torch.testing.assert_close(out_ours, out_theirs, rtol=0, atol=1e-6)
    nn.functional.cross_entropy(out_ours, y).backward()
    nn.functional.cross_entropy(out_theirs, y).backward()
    for name, layer in lora_layers(ours).items():
        peft_layer = theirs.base_model.model.get_submodule(name)
        torch.testing.assert_close(layer.lora_A.grad, peft_layer.lora_A["default"].weight.grad,
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layer.lora_B.grad, peft_layer.lora_B["default"].weight.grad,
                                   rtol=1e-5, atol=1e-6)
        assert layer.scaling == pytest.approx(peft_layer.scaling["default"])
    assert all(p.grad is None for n, p in theirs.named_parameters() if "lora_" not in n)
    assert all(p.grad is None for n, p in ours.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("targets, rank, alpha, rslora", CASES)
def test_counts_and_summary_match_peft(targets, rank, alpha, rslora):
    _, ours, theirs = twins(targets, rank, alpha, rslora)
    trainable, total = theirs.get_nb_trainable_parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # break-even warnings
        _, summary = trainable_parameters_report(ours)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        theirs.print_trainable_parameters()
    assert summary == printed.getvalue().strip()
    assert summary.startswith(f"trainable params: {trainable:,d} || all params: {total:,d}")


def test_reference_count_at_rank_8_is_peft_count():
    _, _, theirs = twins(("linear1", "linear2", "linear3"), 8, 16, False)
    assert theirs.get_nb_trainable_parameters() == (30_352, 933_862)


@pytest.mark.parametrize("targets, rank, alpha, rslora", CASES)
def test_peft_loads_an_adapter_written_by_save_adapter(tmp_path, targets, rank, alpha, rslora, x):
    base, ours, _ = twins(targets, rank, alpha, rslora)
    save_adapter(ours, tmp_path)
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()
    assert loaded.peft_config["default"].r == rank
    torch.testing.assert_close(loaded(x), ours(x), rtol=0, atol=1e-6)


def test_save_adapter_writes_the_same_keys_as_peft(tmp_path):
    _, ours, theirs = twins(("linear1", "linear2", "linear3"), 8, 16, False)
    save_adapter(ours, tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "peft")
    keys = {}
    for who in ("ours", "peft"):
        with safe_open(tmp_path / who / "adapter_model.safetensors", framework="pt") as f:
            keys[who] = set(f.keys())
    assert keys["ours"] == keys["peft"]


def test_load_adapter_reads_peft_save_pretrained(tmp_path, x):
    base, _, theirs = twins(("linear1", "linear3"), 4, 8, False)
    theirs.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no base-weight SHA-256"):  # peft records no base hash
        ours = load_adapter(copy.deepcopy(base), tmp_path)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_merge_matches_peft_merge_and_unload(x):
    _, ours, theirs = twins(("linear1", "linear2", "linear3"), 8, 16, False)
    merged_peft = theirs.merge_and_unload()
    for layer in lora_layers(ours).values():
        layer.merge()
    for name, layer in lora_layers(ours).items():
        torch.testing.assert_close(layer.original_layer.weight, merged_peft.get_submodule(name).weight,
                                   rtol=0, atol=1e-6)
    torch.testing.assert_close(ours(x), merged_peft(x), rtol=0, atol=1e-5)
