"""Chapter 07 executed with papermill at its defaults: the equalities it claims, from
merge_and_share.json, and the adapter files it leaves behind."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import PeftModel

from lorafm_helpers import DeepNN, load_adapter, load_checkpoint, predict, read_metrics_json

STEM = "07_merge_and_share"


@pytest.fixture(scope="module")
def measured(series) -> dict:
    series.run(STEM)
    return read_metrics_json(series.artifacts / "merge_and_share.json")


def test_merged_logits_equal_unmerged(measured):
    merge = measured["merge"]
    assert measured["tolerance"] <= 1e-5
    assert merge["max_abs_logit_diff_float64"] <= 1e-10  # exact but for float64 rounding
    assert merge["relative_diff_float32"] <= measured["tolerance"]
    # In float32 the difference is rounding: the size of the base model's own float32 error.
    assert merge["max_abs_logit_diff_float32"] <= 4 * merge["base_float32_rounding"]
    assert merge["predictions_identical"] and merge["unmerge_exact"]
    assert merge["unloaded_equals_merged"] and merge["unloaded_same_keys"]


def test_adapter_changes_the_model(measured):
    accuracy = measured["test_accuracy"]
    assert accuracy["base"] >= 0.895 and accuracy["adapted"] >= 0.89
    assert accuracy["adapted"] != accuracy["base"]


def test_merged_inference_costs_what_the_base_costs(measured):
    timing = measured["timing"]
    for workload in ("batch", "single"):
        assert all(timing[workload][f"{m}_ms"] > 0 for m in ("base", "unmerged", "merged"))
        # Same arithmetic as the base; the slack is for a machine shared with other jobs.
        assert 0.5 <= timing[workload]["merged_ratio"] <= 1.5, timing[workload]
    assert timing["single"]["unmerged_ratio"] > timing["single"]["merged_ratio"]


def test_adapter_is_small_on_disk(measured):
    size = measured["size"]
    assert size["adapter_params"] == 30_352 and size["model_params"] == 903_510
    assert size["checkpoint_bytes"] / size["adapter_bytes"] == pytest.approx(size["ratio"])
    assert size["ratio"] >= 20
    assert size["merged_checkpoint_loads_in_plain_torch"]


def test_reload_and_peft_give_the_same_predictions(measured):
    assert measured["reload"]["max_abs_logit_diff"] == 0 and measured["reload"]["predictions_identical"]
    peft_result = measured["peft"]
    assert peft_result["max_abs_logit_diff"] <= 1e-5 and peft_result["predictions_identical"]
    assert peft_result["merged_weight_max_abs_diff"] <= 1e-6
    assert peft_result["test_accuracy"] == pytest.approx(measured["test_accuracy"]["adapted"])


def test_other_bases_are_refused(measured):
    other = measured["other_base"]
    assert other["refused"] and all(other["refused"].values())
    assert all("other base weights" in message for message in other["messages"].values())
    assert other["peft_accuracy_on_untrained_base"] < 0.5  # what the check protects against


def test_shared_adapter_loads_in_peft_onto_the_baseline(series, measured):
    base = DeepNN()
    load_checkpoint(series.artifacts / "baseline.pt", base)
    x = torch.randn(32, 784, generator=torch.Generator().manual_seed(0))
    shared = series.artifacts / "dress_adapter_shared"
    ours = load_adapter(copy.deepcopy(base), shared).eval()
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), str(shared)).eval()
    torch.testing.assert_close(predict(ours, x), predict(theirs, x), rtol=0, atol=1e-5)
