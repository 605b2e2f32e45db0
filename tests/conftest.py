"""Shared fixtures. The chapters are executed once per test session, one at a time
(two trainings at once on two cores each run many times slower)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from run_notebooks import run_series  # noqa: E402

# Overrides for the test run; every other chapter runs at its defaults.
TEST_PARAMETERS: dict[str, dict] = {}


@pytest.fixture(scope="session")
def series(tmp_path_factory):
    """Every chapter executed with papermill into a temporary folder.

    Returns an object with `executed` (folder of executed notebooks), `artifacts` (folder of
    what they wrote) and `errors` (chapter stem -> exception or None).
    """
    base = tmp_path_factory.mktemp("series")
    executed, artifacts = base / "executed", base / "artifacts"
    errors = run_series(executed, artifacts, TEST_PARAMETERS)
    return SimpleNamespace(executed=executed, artifacts=artifacts, errors=errors)


@pytest.fixture
def chapter(series):
    """Call with a chapter stem: fails the test if that chapter did not execute cleanly,
    else returns the path of its executed notebook."""

    def executed(stem: str) -> Path:
        assert stem in series.errors, f"{stem} was not executed; is notebooks/{stem}.ipynb there?"
        error = series.errors[stem]
        if error is not None:
            pytest.fail(f"{stem} failed under papermill: {error}")
        return series.executed / f"{stem}.ipynb"

    return executed
