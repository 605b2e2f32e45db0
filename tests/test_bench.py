"""benchmarks/bench.py keeps working: a quick run writes every field, sane, and the table.

No timing is asserted (timings depend on the machine and on whatever else runs on it).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")
# The fields the benchmark issue names, and the measurements they are computed from.
POSITIVE_FLOATS = [
    "calibration_gflops", "train_epoch_s", "train_samples_per_s", "train_epoch_gflops",
    "train_epoch_gflops_ratio", "full_step_ms", "lora_step_ms", "lora_vs_full_step_ratio",
    "inference_base_ms", "inference_unmerged_ms", "inference_merged_ms",
    "merged_vs_base_inference_ratio", "unmerged_vs_base_inference_ratio", "peak_rss_mb",
]
DURATIONS = [12.5, 30.0]


@pytest.fixture(scope="module")
def bench():
    """benchmarks/bench.py imported as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench"]


def write_executed(folder: Path, durations: list[float | None]) -> None:
    folder.mkdir(parents=True)
    for i, duration in enumerate(durations, 1):
        metadata = {"papermill": {"duration": duration}} if duration is not None else {}
        nbformat.write(nbformat.v4.new_notebook(metadata=metadata), folder / f"{i:02d}_chapter.ipynb")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("bench")
    write_executed(tmp / "executed", DURATIONS)
    table = tmp / "README.md"
    table.write_text(f"# Title\n\nbefore\n\n{MARKERS[0]}\nold table\n{MARKERS[1]}\n\nafter\n")
    output = tmp / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--output", str(output), "--tables", str(table),
         "--executed", str(tmp / "executed")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(output.read_text()), table, proc


def test_quick_run_writes_every_field_with_sane_values(quick_run):
    results, _, _ = quick_run
    assert results["quick"] is True
    for name in POSITIVE_FLOATS:
        value = results[name]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (name, value)
    assert results["batch_size"] == 128
    assert results["parameters"] == 903_510
    assert results["lora_rank"] == 8 and results["lora_trainable_parameters"] == 30_352
    assert results["train_epoch_flop"] == 6 * 903_510 * results["train_epoch_samples"]
    assert results["train_epoch_gflops_ratio"] == pytest.approx(
        results["train_epoch_gflops"] / results["calibration_gflops"])
    assert results["lora_vs_full_step_ratio"] == pytest.approx(
        results["lora_step_ms"] / results["full_step_ms"])
    assert results["merged_vs_base_inference_ratio"] == pytest.approx(
        results["inference_merged_ms"] / results["inference_base_ms"])
    pressure = results["cpu_pressure_avg60_pct"]
    assert pressure is None or 0 <= pressure <= 100
    machine = results["machine"]
    assert machine["cpu"] and machine["torch"] and machine["torch_threads"] >= 1
    repeats = results["sizes"]["repeats"]
    for name, values in results["samples"].items():
        assert len(values) >= repeats and all(v > 0 for v in values), name


def test_merged_model_gives_the_unmerged_logits(quick_run):
    results, _, _ = quick_run
    assert results["merged_max_abs_logit_diff"] < 1e-4


def test_series_wall_time_sums_papermill_durations(quick_run):
    results, _, _ = quick_run
    assert results["series_wall_s"] == pytest.approx(sum(DURATIONS))
    assert results["series_chapters"] == len(DURATIONS)
    assert set(results["targets_met"]) == set(results["targets"])
    assert results["targets_met"]["series_wall_s"] is True  # 42.5 s <= 600 s


def test_table_replaces_only_what_lies_between_the_markers(quick_run):
    results, table, _ = quick_run
    text = table.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    inside = text.split(MARKERS[0])[1].split(MARKERS[1])[0]
    assert "old table" not in inside
    assert f"| {results['lora_vs_full_step_ratio']:.2f} |" in inside
    assert f"| {results['train_epoch_gflops_ratio']:.2f} |" in inside
    assert "quick mode" in inside


def test_series_wall_time_is_null_without_a_complete_run(bench, tmp_path):
    assert bench.series_wall_seconds(tmp_path / "missing") == (None, 0)
    write_executed(tmp_path / "partial", [10.0, None])
    assert bench.series_wall_seconds(tmp_path / "partial") == (None, 2)


def test_missing_markers_leave_the_file_alone(bench, tmp_path):
    path = tmp_path / "README.md"
    path.write_text("no markers here\n")
    assert bench.write_between_markers(path, "table") is False
    assert path.read_text() == "no markers here\n"
