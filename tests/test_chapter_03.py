"""Chapter 03, freezing and parameter counts: the counts it shows and the proof that the base stays put."""

from __future__ import annotations

import nbformat
import pytest

from lorafm_helpers import DeepNN, base_weights_sha256, load_checkpoint, read_metrics_json

STEM = "03_freezing_and_parameter_counts"
SUMMARY = "trainable params: 30,352 || all params: 933,862 || trainable%: 3.2502"


@pytest.fixture(scope="module")
def chapter(series) -> tuple[nbformat.NotebookNode, dict]:
    series.run("01_baseline_training")  # the chapter loads its baseline.pt, as a reader's run does
    nb = nbformat.read(series.run(STEM), as_version=4)
    return nb, read_metrics_json(series.artifacts / "parameter_counts.json")


def printed(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                     if o.output_type == "stream")


@pytest.mark.notebook
def test_runs_under_a_minute_without_errors(chapter):
    nb, measured = chapter
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert measured["seconds"] < 60


@pytest.mark.notebook
def test_summary_line_and_counts_at_rank_8(chapter):
    nb, measured = chapter
    assert measured["summary"] == SUMMARY
    assert SUMMARY in printed(nb)
    assert (measured["trainable"], measured["frozen"], measured["all"]) == (30_352, 903_510, 933_862)
    assert measured["per_rank"] == 3_794
    layers = {row["layer"]: row for row in measured["per_layer"]}
    assert {name: row["LoRA params"] for name, row in layers.items()} == {
        "linear1": 10_272, "linear2": 12_000, "linear3": 8_080}
    assert sum(row["frozen params"] for row in layers.values()) == 903_510


@pytest.mark.notebook
def test_rank_table_is_3794_times_r_with_break_even_flags(chapter):
    _, measured = chapter
    rows = measured["ranks"]
    assert [row["r"] for row in rows] == [1, 2, 4, 8, 16, 32]
    for row in rows:
        assert row["trainable"] == 3_794 * row["r"]
        assert row["all"] == 903_510 + 3_794 * row["r"]
        assert row["layers past break-even"] == ("linear3" if row["r"] >= 10 else "-")
    assert measured["break_even"]["linear3"] == pytest.approx(1000 * 10 / 1010)
    assert measured["break_even"]["linear1"] == pytest.approx(784 * 500 / 1284)


@pytest.mark.notebook
def test_steps_move_only_a_and_b(chapter, series):
    _, measured = chapter
    proof = measured["proof"]
    baseline = DeepNN()
    load_checkpoint(series.artifacts / "baseline.pt", baseline)
    assert proof["base_sha256_before"] == proof["base_sha256_after"] == base_weights_sha256(baseline)
    assert proof["base_unchanged"] and proof["optimizer_holds_only_lora"]
    assert proof["optimizer_numbers"] == 30_352
    assert proof["adam_state_numbers"] == 2 * 30_352
    assert proof["frozen_params_with_grad"] == []
    assert set(proof["lora_B_norms"]) == {"linear1", "linear2", "linear3"}
    assert all(norm > 0 for norm in proof["lora_B_norms"].values())
    assert proof["steps"] >= 1
    assert abs(proof["test_accuracy_after_steps"] - proof["test_accuracy_baseline"]) < 0.02
