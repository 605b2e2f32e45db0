"""The results table: read from the chapters' JSON, and the README's copy agrees with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from results_table import (
    END,
    START,
    ReadmeMarkersError,
    replace_block,
    results_markdown,
    results_rows,
    write_readme,
)

from lorafm_helpers import CLASSES
from lorafm_helpers.metrics import write_metrics_json

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.0015  # the table rounds to 3 decimals
NUMBER_COLUMNS = ["accuracy", "dress_precision", "dress_recall", "dress_f1", "trainable_params"]


def table_rows(markdown: str) -> dict[str, list[float]]:
    """Label -> the numbers of its row, from the markdown table inside the results markers."""
    block = markdown.split(START)[1].split(END)[0] if START in markdown else markdown
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] == "model" or set(cells[0]) <= set("-: "):
            continue
        rows[cells[0]] = [float(c.replace(",", "")) for c in cells[1:]]
    return rows


def disagreements(markdown: str, rows: list[dict]) -> list[str]:
    """Every way the table in `markdown` differs from `rows` (missing, extra or different rows)."""
    shown = table_rows(markdown)
    problems = [f"README lacks the row {r['label']!r}" for r in rows if r["label"] not in shown]
    problems += [f"README has a row {label!r} that no artifact backs"
                 for label in shown.keys() - {r["label"] for r in rows}]
    for row in (r for r in rows if r["label"] in shown):
        for column, value in zip(NUMBER_COLUMNS, shown[row["label"]], strict=True):
            expected = row[column]
            if abs(value - expected) > (0 if column == "trainable_params" else TOLERANCE):
                problems.append(f"{row['label']} {column}: README {value} vs artifacts {expected:.4f}")
    return problems


def fake_metrics(accuracy: float, dress: tuple[float, float, float]) -> dict:
    per_class = {c: {"precision": 0.9, "recall": 0.9, "f1": 0.9} for c in CLASSES}
    per_class["Dress"] = dict(zip(("precision", "recall", "f1"), dress, strict=True))
    return {"accuracy": accuracy, "per_class": per_class}


@pytest.fixture
def artifacts(tmp_path):
    write_metrics_json(tmp_path / "baseline_metrics.json",
                       {**fake_metrics(0.9022, (0.9107, 0.908, 0.9094)), "parameters": 903_510})
    write_metrics_json(tmp_path / "lora_metrics.json", {
        "baseline": fake_metrics(0.9022, (0.9107, 0.908, 0.9094)),
        "lora": fake_metrics(0.9005, (0.8524, 0.947, 0.8972)),
        "logit_bias": {"bias": 1.42, **fake_metrics(0.901, (0.8527, 0.949, 0.8982))},
        "original_writeup": {**fake_metrics(0.848, (0.81, 0.92, 0.86)), "trainable_params": 30_352},
        "trainable_params": 30_352,
        "recipe": {"rank": 8},
    })
    return tmp_path


def test_rows_come_from_the_json(artifacts):
    rows = results_rows(artifacts)
    assert [r["label"] for r in rows] == ["Baseline (ch 01)", "LoRA r=8 recipe (ch 04)",
                                          "Dress logit bias, no training (ch 04)", "Original write-up"]
    assert [r["trainable_params"] for r in rows] == [903_510, 30_352, 0, 30_352]
    assert rows[1]["dress_recall"] == 0.947 and rows[2]["accuracy"] == 0.901


def test_rows_of_missing_artifacts_are_left_out(artifacts):
    (artifacts / "lora_metrics.json").unlink()
    assert [r["label"] for r in results_rows(artifacts)] == ["Baseline (ch 01)"]
    (artifacts / "baseline_metrics.json").unlink()
    assert results_rows(artifacts) == []
    assert "No results yet" in results_markdown(artifacts)


def test_markdown_rounds_measured_to_3_decimals_and_keeps_published_digits(artifacts):
    markdown = results_markdown(artifacts)
    assert "| LoRA r=8 recipe (ch 04) | 0.900 | 0.852 | 0.947 | 0.897 | 30,352 |" in markdown
    assert "| Original write-up | 0.848 | 0.81 | 0.92 | 0.86 | 30,352 |" in markdown
    assert disagreements(markdown, results_rows(artifacts)) == []


def test_the_check_catches_a_stale_number_and_a_missing_row(artifacts):
    rows = results_rows(artifacts)
    markdown = results_markdown(artifacts)
    stale = markdown.replace("| 0.947 |", "| 0.940 |")
    assert disagreements(stale, rows) == [
        "LoRA r=8 recipe (ch 04) dress_recall: README 0.94 vs artifacts 0.9470"]
    dropped = "\n".join(line for line in markdown.splitlines() if "logit bias" not in line)
    assert disagreements(dropped, rows) == ["README lacks the row 'Dress logit bias, no training (ch 04)'"]


def test_write_readme_replaces_only_the_block(artifacts, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{START}\nold table\n{END}\n\nafter\n")
    write_readme(artifacts, readme)
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert "old table" not in text and disagreements(text, results_rows(artifacts)) == []
    assert replace_block(text, results_markdown(artifacts)) == text  # idempotent


def test_missing_markers_are_refused_with_a_message(artifacts, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    with pytest.raises(ReadmeMarkersError, match="results:start"):
        write_readme(artifacts, readme)
    assert readme.read_text() == "# no markers here\n"


@pytest.mark.notebook
def test_readme_table_matches_what_the_chapters_compute(series):
    series.run("01_baseline_training")
    series.run("04_oversampling_and_weighted_loss")
    rows = results_rows(series.artifacts)
    assert len(rows) == 4
    problems = disagreements((ROOT / "README.md").read_text(), rows)
    assert not problems, ("README.md's results table disagrees with the chapters; run "
                          "`.venv/bin/python tools/results_table.py --write-readme`:\n" + "\n".join(problems))
    assert json.loads((series.artifacts / "lora_metrics.json").read_text())["trainable_params"] == 30_352
