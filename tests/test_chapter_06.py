"""Chapter 06 executed with papermill on a small grid (TEST_PARAMETERS): every row kind the issue
lists is in experiments.json with exactly its fields and sane numbers, and the recommendation was
chosen on validation."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest
from conftest import TEST_PARAMETERS
from run_notebooks import NOTEBOOKS

from lorafm_helpers import EXPERIMENT_FIELDS, recommend

STEM = "06_experiments"
ALL = ["linear1", "linear2", "linear3"]
LAYER_SIZES = {"linear1": (784, 500), "linear2": (500, 1000), "linear3": (1000, 10)}


def defaults() -> dict:
    """The notebook's parameters cell, as plain values."""
    nb = nbformat.read(NOTEBOOKS / f"{STEM}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}


@pytest.fixture(scope="module")
def run(series) -> tuple[list[dict], dict, dict]:
    series.run(STEM)
    rows = json.loads((series.artifacts / "experiments.json").read_text())
    choice = json.loads((series.artifacts / "experiments_choice.json").read_text())
    return rows, choice, {**defaults(), **TEST_PARAMETERS.get(STEM, {})}


def lora(rows, p, *, rank=None, alpha=None, scaling="alpha/r", weight=None, layers=None) -> list[dict]:
    want = {"method": "lora", "rank": rank or p["RECIPE_RANK"], "alpha": alpha or p["RECIPE_ALPHA"],
            "scaling": scaling, "dress_weight": weight or p["RECIPE_WEIGHT"], "layers": layers or ALL}
    return [r for r in rows if all(r[k] == v for k, v in want.items())]


def test_default_grid_is_the_one_the_issue_asks_for():
    p = defaults()
    assert p["RANKS"] == [1, 2, 4, 8, 16]
    assert p["ALPHAS"] == p["RSLORA_ALPHAS"] == [p["RECIPE_RANK"], 16, 32]  # alpha in {r, 16, 32}
    assert p["DRESS_WEIGHTS"] == [1.0, 1.5, 2.0, 3.0, 5.0]
    assert sorted(map(sorted, p["LAYER_CHOICES"])) == sorted(
        [["linear1"], ["linear2"], ["linear3"], ["linear2", "linear3"], ALL])
    assert p["HEAD_ONLY"] is True and p["FULL_LRS"] == [1e-4, 1e-3]
    assert p["GO_FURTHER"] and p["NOISE_SEEDS"]


def test_rows_have_exactly_the_fields(run):
    rows, _, _ = run
    assert rows and all(list(r) == list(EXPERIMENT_FIELDS) for r in rows)
    assert len({r["name"] for r in rows}) == len(rows)


def test_every_required_row_is_there(run):
    rows, _, p = run
    missing = [f"rank {r}" for r in p["RANKS"] if len(lora(rows, p, rank=r)) != 1]
    missing += [f"alpha {a}" for a in p["ALPHAS"] if len(lora(rows, p, alpha=a)) != 1]
    missing += [f"rsLoRA alpha {a}" for a in p["RSLORA_ALPHAS"]
                if len(lora(rows, p, alpha=a, scaling="alpha/sqrt(r)")) != 1]
    missing += [f"weight {w}" for w in p["DRESS_WEIGHTS"] if len(lora(rows, p, weight=w)) != 1]
    missing += [f"layers {c}" for c in p["LAYER_CHOICES"] if len(lora(rows, p, layers=c)) != 1]
    methods = [r["method"] for r in rows]
    if p["HEAD_ONLY"]:
        missing += [] if methods.count("head-only") == 1 else ["head-only"]
    missing += [f"full lr={lr:g}" for lr in p["FULL_LRS"]
                if not any(r["method"] == "full" and f"lr={lr:g}" in r["name"] for r in rows)]
    missing += [] if methods.count("baseline") == 1 else ["baseline"]
    missing += [] if methods.count("logit bias") == 2 else ["two logit-bias rows"]
    further = [r for r in rows if r["method"].endswith("+ augmentation")]
    missing += [] if len(further) == len(p["GO_FURTHER"]) else ["go-further rows"]
    assert not missing, missing


def test_numbers_are_in_range(run):
    rows, _, _ = run
    for r in rows:
        assert 0.85 <= r["accuracy"] <= 1, r
        assert all(0.7 <= r[k] <= 1 for k in ("dress_precision", "dress_recall", "dress_f1")), r
        assert -0.05 <= r["worst_other_f1_drop"] <= 0.1, r
        assert 0 <= r["seconds"] < 120, r
    baseline = next(r for r in rows if r["method"] == "baseline")
    assert baseline["worst_other_f1_drop"] == 0 and baseline["trainable_params"] == 0
    assert baseline["accuracy"] >= 0.895


def test_trainable_parameters_match_the_method(run):
    rows, _, _ = run
    for r in rows:
        if r["method"].startswith("lora"):
            expected = r["rank"] * sum(sum(LAYER_SIZES[layer]) for layer in r["layers"])
        elif r["method"].startswith("full"):
            expected = 903_510
        elif r["method"] == "head-only":
            expected = 10_010
        else:
            expected = 0
        assert r["trainable_params"] == expected, r


def test_recipe_trades_precision_for_recall_like_the_bias(run):
    rows, _, p = run
    baseline = next(r for r in rows if r["method"] == "baseline")
    (recipe,) = lora(rows, p)
    matched = next(r for r in rows if r["method"] == "logit bias" and "recipe's recall" in r["name"])
    assert recipe["dress_recall"] >= baseline["dress_recall"] + 0.02
    assert recipe["dress_precision"] <= baseline["dress_precision"] - 0.02
    assert abs(matched["dress_recall"] - recipe["dress_recall"]) <= 0.02


def test_recommendation_is_chosen_on_validation(run):
    rows, choice, _ = run
    val = choice["validation"]
    assert [r["name"] for r in val] == [r["name"] for r in rows]
    assert all(list(r) == list(EXPERIMENT_FIELDS) for r in val)
    rule = {"max_accuracy_drop": choice["max_accuracy_drop"], "f1_tolerance": choice["f1_tolerance"]}
    assert choice["recommended"]["best LoRA setting"] == recommend(val, methods=["lora"], **rule)["name"]
    assert choice["recommended"]["best row overall"] == recommend(val, **rule)["name"]
