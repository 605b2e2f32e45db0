"""A mistake made in a parameters cell shows one readable message, not a traceback.

The cells run in a real kernel (nbclient). The `traceback` list of an error output is exactly
what JupyterLab displays, so a single entry "Name: message" is what the learner sees.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from run_notebooks import chapters

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MISSING_DATA_DIR = "no-such-folder/fashion-mnist"

# What a learner might type into a chapter's parameters cell, by parameter name.
BAD_EDITS = {"DATA_DIR": repr(MISSING_DATA_DIR), "RANK": "-1", "TARGETS": "['linear4']"}

# Library calls fed a bad parameter: (case, cell source, expected error, fragment of its message).
HIDE_DEBIAN_COPY = ("import lorafm_helpers.data\n"
                    "lorafm_helpers.data.DEBIAN_DIR = lorafm_helpers.data.Path('no-debian-copy')")
LIBRARY_CASES = [
    ("missing data folder",
     f"DATA_DIR = {MISSING_DATA_DIR!r}\n"
     "from lorafm_helpers import load_fashion_mnist\n"
     "load_fashion_mnist(root=DATA_DIR)",
     "DatasetNotFoundError", MISSING_DATA_DIR),
    ("negative rank, LoRALayer",
     "RANK = -1\n"
     "from torch import nn\n"
     "from lorafm_helpers import LoRALayer\n"
     "LoRALayer(nn.Linear(784, 500), rank=RANK, alpha=16)",
     "LoRAConfigError", "rank must be a positive integer, got -1"),
    ("negative rank, apply_lora",
     "RANK = -1\n"
     "from lorafm_helpers import DeepNN, apply_lora\n"
     "apply_lora(DeepNN(), ['linear1', 'linear2'], rank=RANK, alpha=16)",
     "LoRAConfigError", "got -1"),
    ("unknown layer name",
     "TARGETS = ['linear1', 'linear4']\n"
     "from lorafm_helpers import DeepNN, apply_lora\n"
     "apply_lora(DeepNN(), TARGETS, rank=8, alpha=16)",
     "LoRAConfigError", "no layer named 'linear4'"),
    ("parameter check",
     "RANK = -1\n"
     "from lorafm_helpers import require\n"
     "require(RANK >= 1, f'RANK must be a whole number >= 1, got {RANK}')",
     "ParameterError", "RANK must be a whole number >= 1, got -1"),
]
# An error from deep inside torch keeps its full traceback: the check above can tell the two apart.
CONTROL_CASE = ("import torch\nfrom lorafm_helpers import DeepNN\nDeepNN()(torch.zeros(1, 10))",
                "RuntimeError")


def execute(sources: list[str], cwd: Path) -> list[nbformat.NotebookNode]:
    """Run `sources` as code cells in a fresh python3 kernel in `cwd`, going on after errors."""
    nb = new_notebook(cells=[new_code_cell(s) for s in sources],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=180, allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb.cells


def the_error(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, f"expected one error output from:\n{cell.source}\ngot {cell.outputs}"
    return errors[0]


def assert_readable(cell: nbformat.NotebookNode, ename: str, fragment: str) -> None:
    """The cell failed with `ename`, shown as the single entry 'ename: message' and nothing else."""
    error = the_error(cell)
    assert error.ename == ename, f"{error.ename}: {error.evalue}"
    shown = [ANSI.sub("", entry) for entry in error.traceback]
    assert shown == [f"{ename}: {error.evalue}"], "\n".join(shown)
    assert fragment in shown[0]
    assert "Traceback" not in shown[0] and "site-packages" not in shown[0]


@pytest.fixture(scope="module")
def library_cells(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Every library case executed once, in one kernel that finds no data anywhere."""
    cwd = tmp_path_factory.mktemp("readable_errors")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LORAFM_DATA", raising=False)
        cells = execute([HIDE_DEBIAN_COPY, CONTROL_CASE[0]] + [c[1] for c in LIBRARY_CASES], cwd)
    assert not cells[0].outputs, cells[0].outputs
    named = {case[0]: cell for case, cell in zip(LIBRARY_CASES, cells[2:], strict=True)}
    return {"control": cells[1], **named}


@pytest.mark.parametrize("case, source, ename, fragment", LIBRARY_CASES, ids=[c[0] for c in LIBRARY_CASES])
def test_library_error_is_one_readable_message(library_cells, case, source, ename, fragment):
    assert_readable(library_cells[case], ename, fragment)


def test_error_from_library_internals_keeps_its_traceback(library_cells):
    error = the_error(library_cells["control"])
    assert error.ename == CONTROL_CASE[1]
    assert len(error.traceback) > 1


def parameters_and_check(path: Path) -> tuple[str, str]:
    """Sources of a chapter's parameters cell and of the cell after it, which validates them."""
    cells = nbformat.read(path, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return cells[index].source, cells[index + 1].source


def applicable_edits(path: Path) -> dict[str, str]:
    """The BAD_EDITS whose parameter the chapter has."""
    parameters, _ = parameters_and_check(path)
    return {name: bad for name, bad in BAD_EDITS.items()
            if re.search(rf"^{name}\s*=", parameters, flags=re.MULTILINE)}


EDITED_CHAPTERS = [p for p in chapters() if applicable_edits(p)]


@pytest.mark.parametrize("path", EDITED_CHAPTERS, ids=[p.stem for p in EDITED_CHAPTERS])
def test_chapter_rejects_a_bad_parameter_in_one_readable_message(path, tmp_path):
    """Each bad edit of the chapter's parameters cell is stopped by its validation cell."""
    parameters, check = parameters_and_check(path)
    edits = applicable_edits(path)
    notebooks = tmp_path / "notebooks"  # the chapter's cwd; ARTIFACTS_DIR goes to a temporary folder
    notebooks.mkdir()
    sources = []
    for name, bad in edits.items():
        sources += [f"{parameters}\nARTIFACTS_DIR = {str(tmp_path / 'artifacts')!r}\n{name} = {bad}", check]
    cells = execute(sources, notebooks)
    for name, check_cell in zip(edits, cells[1::2], strict=True):
        error = the_error(check_cell)
        assert_readable(check_cell, error.ename, name)
