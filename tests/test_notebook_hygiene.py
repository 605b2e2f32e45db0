"""Every chapter source is clean, numbered and follows the page outline."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest
from run_notebooks import chapters

CHAPTERS = chapters()


def test_chapters_exist_and_are_numbered_contiguously():
    numbers = [int(p.name[:2]) for p in CHAPTERS]
    assert numbers == list(range(1, len(numbers) + 1)), [p.name for p in CHAPTERS]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_source_has_no_outputs_and_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit notebooks without outputs"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_page_outline_and_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.name[:2]} ·")
    for heading in ("What you will learn", "Prerequisites", "Recap", "Exercises"):
        assert heading.lower() in markdown.lower(), f"missing '{heading}'"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(nb.cells[tagged[0]].source)
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert {"SEED", "ARTIFACTS_DIR"} <= names
    for node in tree.body:  # plain literals only, so papermill can override every knob
        assert isinstance(node, ast.Assign), ast.dump(node)
        ast.literal_eval(node.value)
    assert "require(" in nb.cells[tagged[0] + 1].source, "the cell after the parameters validates them"
