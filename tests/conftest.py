"""Shared fixtures. Chapters are executed with papermill at most once per test session, one
at a time (two trainings at once on two cores each run many times slower)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from run_notebooks import chapters, run_chapter  # noqa: E402

# Overrides for the test run; every other chapter runs at its default parameters.
TEST_PARAMETERS: dict[str, dict] = {
    # 06 at its defaults trains about 30 fine-tunes; the test runs one row of every kind.
    "06_experiments": {"RANKS": [1, 8], "ALPHAS": [8, 16], "RSLORA_ALPHAS": [16], "DRESS_WEIGHTS": [1.0, 3.0],
                       "LAYER_CHOICES": [["linear3"], ["linear1", "linear2", "linear3"]], "FULL_LRS": [1e-4],
                       "GO_FURTHER": ["dress_augmented"], "NOISE_SEEDS": [1]},
}


class Series:
    """Chapters executed on demand into one temporary folder, sharing one artifacts folder."""

    def __init__(self, base: Path) -> None:
        self.executed, self.artifacts = base / "executed", base / "artifacts"
        self.errors: dict[str, Exception | None] = {}

    def run(self, stem: str) -> Path:
        """Execute chapter `stem` once (later calls reuse it); fail the test if it failed."""
        sources = {p.stem: p for p in chapters()}
        assert stem in sources, f"notebooks/{stem}.ipynb does not exist"
        if stem not in self.errors:
            try:
                run_chapter(sources[stem], self.executed, self.artifacts, TEST_PARAMETERS.get(stem))
                self.errors[stem] = None
            except Exception as err:  # recorded, reported by every test that needs it
                self.errors[stem] = err
        if self.errors[stem] is not None:
            pytest.fail(f"{stem} failed under papermill: {self.errors[stem]}")
        return self.executed / f"{stem}.ipynb"

    def run_all(self) -> list[Path]:
        """Execute every chapter in reading order; returns the executed notebooks."""
        return [self.run(p.stem) for p in chapters()]


@pytest.fixture(scope="session")
def series(tmp_path_factory) -> Series:
    """The chapters of this test session: `series.run("01_baseline_training")` executes one
    (once) and returns its executed notebook; `series.artifacts` holds what they wrote."""
    return Series(tmp_path_factory.mktemp("series"))
