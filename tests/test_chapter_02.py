"""Chapter 02, the LoRA layer's math: its inline layer is the helper's, and what it measures holds."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

from lorafm_helpers import LoRALayer, read_metrics_json

STEM = "02_lora_layer_math"
ROOT = Path(__file__).resolve().parent.parent


def inline_layer_class() -> type:
    """The `class LoRALayer` cell of the committed notebook, executed on its own."""
    nb = nbformat.read(ROOT / "notebooks" / f"{STEM}.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "class LoRALayer(" in c.source]
    assert len(cells) == 1, "chapter 02 must define its LoRALayer in exactly one code cell"
    tree = ast.parse(cells[0])
    assert [type(node).__name__ for node in tree.body] == ["ClassDef"], "that cell holds only the class"
    namespace = {"math": math, "torch": torch, "nn": nn}
    exec(compile(tree, f"{STEM}.ipynb", "exec"), namespace)
    return namespace["LoRALayer"]


@pytest.mark.parametrize("shape, rank, alpha", [((500, 1000), 8, 16), ((1000, 10), 4, 4), ((784, 500), 1, 2)])
def test_inline_layer_equals_the_helper(shape, rank, alpha):
    Inline = inline_layer_class()
    torch.manual_seed(0)
    mine = Inline(nn.Linear(*shape), rank, alpha)
    torch.manual_seed(0)
    helper = LoRALayer(nn.Linear(*shape), rank, alpha)
    assert torch.equal(mine.lora_A, helper.lora_A) and torch.equal(mine.lora_B, helper.lora_B)
    assert mine.scaling == helper.scaling
    assert {n for n, p in mine.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}
    x = torch.randn(16, shape[0])
    assert torch.equal(mine(x), helper(x))  # zero update at step 0 in both
    with torch.no_grad():
        b = torch.randn(shape[1], rank)
        mine.lora_B.copy_(b)
        helper.lora_B.copy_(b)
    torch.testing.assert_close(mine(x), helper(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(mine.delta_weight(), helper.delta_weight(), rtol=0, atol=1e-6)
    mine(x).sum().backward()
    helper(x).sum().backward()
    torch.testing.assert_close(mine.lora_A.grad, helper.lora_A.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mine.lora_B.grad, helper.lora_B.grad, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def measured(series) -> dict:
    executed = series.run(STEM)
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) >= 3
    return read_metrics_json(series.artifacts / "lora_math.json")


@pytest.mark.notebook
def test_chapter_runs_fast_and_starts_from_a_zero_update(measured):
    assert measured["seconds"] < 60
    assert measured["step0_max_abs_difference"] == 0.0
    assert (measured["rank"], measured["alpha"]) == (8, 16)


@pytest.mark.notebook
def test_toy_fine_tune_learns_the_hidden_change_through_a_and_b_only(measured):
    toy = measured["toy"]
    assert toy["weight_grad_is_none"]
    assert toy["last_loss"] < 0.01 * toy["first_loss"]
    assert toy["relative_error"] < 0.1
    assert measured["learned_update_rank"] <= measured["rank"]


@pytest.mark.notebook
def test_update_rank_equals_r(measured):
    assert measured["matrix_rank"] == {r: int(r) for r in measured["matrix_rank"]}
    assert len(measured["matrix_rank"]) >= 2


@pytest.mark.notebook
def test_parameter_costs(measured):
    for name, (fan_in, fan_out) in {"linear1": (784, 500), "linear2": (500, 1000),
                                    "linear3": (1000, 10)}.items():
        cost = measured["cost"][name]
        assert cost["full"] == fan_in * fan_out
        assert cost["lora"] == 8 * (fan_in + fan_out)
        assert cost["break_even_rank"] == pytest.approx(fan_in * fan_out / (fan_in + fan_out))


@pytest.mark.notebook
def test_scaling_experiment_shows_1_over_sqrt_r_and_rslora_flat(measured):
    rows = measured["scaling"]["rows"]
    ranks = sorted({row["r"] for row in rows})
    expected = 1 / math.sqrt(ranks[-1] / ranks[0])
    assert measured["scaling"]["first_step_size_ratio_lora"] == pytest.approx(expected, rel=0.25)
    assert measured["scaling"]["first_step_size_ratio_rslora"] == pytest.approx(1.0, abs=0.25)
    loss = {(row["scaling"].startswith("α/√r"), row["r"]): row[next(k for k in row if k.startswith("loss"))]
            for row in rows}
    assert loss[(True, ranks[-1])] < loss[(False, ranks[-1])]  # rsLoRA makes more of a large rank


@pytest.mark.notebook
def test_inline_layer_matches_package_and_merge_is_exact_up_to_rounding(measured):
    same = measured["inline_vs_package"]
    assert same["same W"] and same["same A at init"] and same["same scaling"]
    assert same["max |output difference|"] <= 1e-6 and same["max |ΔW difference|"] <= 1e-6
    merge = measured["merge"]
    assert merge["float32"]["max |merged - unmerged output|"] <= 1e-5
    assert merge["float64"]["max |merged - unmerged output|"] <= 1e-12
    assert merge["float32"]["max |unmerge() - W|"] == merge["float64"]["max |unmerge() - W|"] == 0.0
