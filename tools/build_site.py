"""Render the executed chapters into the tutorial website with Jupyter Book 1.

`make site` (and the end of `make tutorial`) runs it on build/executed; tests/test_site.py runs it
on the notebooks its own session executed. It never executes a notebook: it refuses one that was
not executed, or whose execution failed, and treats every Sphinx warning as an error.

Staging (build/site_src/): notebooks/_config.yml and _static/, the intro page (index.md) filled
in from notebooks/intro.md, a _toc.yml listing the chapters present, the chapters (injected-parameter
cells removed, progress bars turned into their final text) and the metrics JSON from artifacts/.
The HTML goes to build/site/ (index at build/site/index.html).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from results_table import results_markdown
from run_notebooks import chapters as source_chapters

from lorafm_helpers.errors import LorafmError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BOOK_CONFIG = NOTEBOOKS / "_config.yml"
BOOK_STATIC = NOTEBOOKS / "_static"
INTRO_TEMPLATE = NOTEBOOKS / "intro.md"
CHAPTER_TABLE_MARK = "<!-- chapter-table -->"
RESULTS_TABLE_MARK = "<!-- results-table -->"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10


class SiteBuildError(LorafmError, ValueError):
    """A chapter cannot be rendered (not executed, failed) or Sphinx reported a problem."""


@dataclass(frozen=True)
class Chapter:
    """What the intro's chapter table says about one executed chapter."""

    stem: str
    number: str
    title: str
    learn: list[str]
    seconds: float


def check_executed(nb: nbformat.NotebookNode, name: str) -> None:
    """Raise SiteBuildError unless every code cell ran under papermill without an error."""
    papermill = nb.metadata.get("papermill")
    if papermill is None:
        raise SiteBuildError(f"{name} has no papermill metadata: it was not executed by "
                             f"tools/run_notebooks.py. Run `make tutorial` (or `make notebooks`) first.")
    if papermill.get("exception"):
        raise SiteBuildError(f"{name}: its execution raised an exception. Open it, fix the failing "
                             f"cell, and run `make notebooks` again.")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.source.strip() and cell.execution_count is None:
            raise SiteBuildError(f"{name}: code cell {i} was never executed; run the whole chapter "
                                 f"with `make notebooks` before building the site.")
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                raise SiteBuildError(f"{name}: code cell {i} ended in {output.ename}: {output.evalue}. "
                                     f"Fix it and run `make notebooks` again.")
            if "application/json" in output.get("data", {}):
                raise SiteBuildError(f"{name}: code cell {i} displays application/json, which the "
                                     f"site does not render; display a DataFrame or print instead.")


def _heading_and_body(nb: nbformat.NotebookNode, name: str) -> tuple[str, str]:
    """The chapter's `# NN · Title` heading and the rest of the markdown before its first code cell."""
    intro = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type == "markdown":
            intro.append(cell.source)
    text = "\n\n".join(intro)
    match = re.search(r"^# +(.+)$", text, flags=re.MULTILINE)
    if match is None:
        raise SiteBuildError(f"{name}: the first markdown cell needs a `# NN · Title` heading.")
    return match.group(1).strip(), text[match.end():]


def what_you_learn(body: str) -> list[str]:
    """The bullets under "What you will learn", else the first paragraph, as markdown strings."""
    lines = body.splitlines()
    start = next((i for i, line in enumerate(lines) if re.search(r"what you will learn", line, re.I)), None)
    if start is not None:
        bullets: list[str] = []
        for line in lines[start + 1:]:
            if re.match(r"^\s*[-*] ", line):
                bullets.append(re.sub(r"^\s*[-*] ", "", line).strip())
            elif bullets and line.startswith("  ") and line.strip():
                bullets[-1] += " " + line.strip()
            elif bullets:  # a blank line or other text ends the list
                break
        if bullets:
            return [b.rstrip(" ;,.") for b in bullets]
    paragraphs = [p.strip() for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    return [" ".join(paragraphs[0].split())] if paragraphs else []


def chapter_info(nb: nbformat.NotebookNode, stem: str) -> Chapter:
    """Number, title, what you learn and run time of one executed chapter."""
    heading, body = _heading_and_body(nb, f"{stem}.ipynb")
    match = re.match(r"^(\d+)\s*[·:.-]\s*(.+)$", heading)
    number, title = (match.group(1), match.group(2)) if match else (stem[:2], heading)
    seconds = float(nb.metadata.papermill.get("duration") or 0.0)
    return Chapter(stem, number, title, what_you_learn(body), seconds)


def format_duration(seconds: float) -> str:
    """A run time as `43 s` or `2 min 05 s`."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def progress_text(output: nbformat.NotebookNode, widgets: dict) -> str | None:
    """The final text of a tqdm progress bar from the widget state papermill saved, or None
    when the output is not a tqdm bar (or its state was not saved)."""
    view = output.get("data", {}).get(WIDGET_VIEW)
    box = widgets.get(view.get("model_id")) if view else None
    if not box or box.get("model_name") != "HBoxModel":
        return None
    parts = [widgets.get(ref.removeprefix("IPY_MODEL_"), {}) for ref in box["state"].get("children", [])]
    if [p.get("model_name") for p in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (p["state"] for p in parts)
    total, done = bar.get("max") or 0, bar.get("value") or 0
    filled = round(BAR_WIDTH * min(done / total, 1.0)) if total else 0
    meter = f"|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|" if total else ""
    text = html.unescape(f"{left.get('value', '')}{meter}{right.get('value', '')}")
    return text.replace("\u2007", " ")


def stage_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The copy the site renders: papermill's injected-parameters cell removed (the reader sees the
    defaults in the `parameters` cell), progress bars as plain text, no widget state (which would
    make every page load widget JavaScript from the internet)."""
    widgets = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        for output in cell.get("outputs", []):
            text = progress_text(output, widgets)
            if text is not None:
                output["data"] = {"text/plain": text}
    return nb


def chapter_table(chapters: list[Chapter]) -> str:
    """The intro's chapter table as a MyST list-table (cells may hold bullet lists)."""
    rows = ["```{list-table}", ":header-rows: 1", ":widths: 6 24 58 12", ":class: chapter-table", "",
            "* - \\#", "  - Chapter", "  - What you learn", "  - Run time"]
    for ch in chapters:
        rows += [f"* - {ch.number}", f"  - [{ch.title}]({ch.stem}.ipynb)"]
        if ch.learn:
            rows += [f"  - - {ch.learn[0]}", *[f"    - {item}" for item in ch.learn[1:]]]
        else:
            rows.append("  - ")
        rows.append(f"  - {format_duration(ch.seconds)}")
    rows.append("```")
    return "\n".join(rows)


def results_section(artifacts: Path, staged_artifacts: list[str]) -> str:
    """The results table read from the artifacts, and download links to the JSON it came from."""
    links = " · ".join(f"{{download}}`{name} <artifacts/{name}>`" for name in staged_artifacts)
    source = f"\n\nRead from the files the chapters wrote: {links}." if links else ""
    return results_markdown(artifacts).strip() + source


def intro_page(chapters: list[Chapter], artifacts: Path, staged_artifacts: list[str]) -> str:
    """notebooks/intro.md with its chapter table and results table filled in."""
    template = INTRO_TEMPLATE.read_text()
    for mark in (CHAPTER_TABLE_MARK, RESULTS_TABLE_MARK):
        if mark not in template:
            raise SiteBuildError(f"{INTRO_TEMPLATE} lost its `{mark}` line; put it back where the "
                                 f"table goes.")
    return (template.replace(CHAPTER_TABLE_MARK, chapter_table(chapters))
            .replace(RESULTS_TABLE_MARK, results_section(artifacts, staged_artifacts)))


def toc_yaml(chapters: list[Chapter]) -> str:
    """The book's table of contents: the intro, then the chapters in reading order."""
    entries = "".join(f"  - file: {ch.stem}\n" for ch in chapters)
    return f"format: jb-book\nroot: index\nparts:\n- caption: Chapters\n  chapters:\n{entries}"


def stage(executed: Path, artifacts: Path, staging: Path) -> list[Chapter]:
    """Check and copy the executed chapters, artifacts and book config into `staging`."""
    sources = sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise SiteBuildError(f"no executed chapters (NN_slug.ipynb) in {executed}; run `make tutorial` "
                             f"or `make notebooks` first.")
    chapters = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        check_executed(nb, path.name)
        chapters.append(chapter_info(nb, path.stem))
        nbformat.write(stage_notebook(nb), staging / path.name)
    (staging / "artifacts").mkdir()
    staged_artifacts = []
    for path in sorted(artifacts.glob("*.json")):
        shutil.copy2(path, staging / "artifacts" / path.name)
        staged_artifacts.append(path.name)
    shutil.copy2(BOOK_CONFIG, staging / "_config.yml")
    shutil.copytree(BOOK_STATIC, staging / "_static")
    (staging / "_toc.yml").write_text(toc_yaml(chapters))
    (staging / "index.md").write_text(intro_page(chapters, artifacts, staged_artifacts))
    return chapters


def build_site(executed: Path, artifacts: Path, output: Path, staging: Path) -> Path:
    """Stage the executed chapters and render them to `output`; returns output/index.html.

    The previous site is replaced only when the new one built without a warning.
    """
    executed, artifacts, output, staging = (Path(p).resolve() for p in (executed, artifacts, output, staging))
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    chapters = stage(executed, artifacts, staging)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", str(staging), "--path-output", str(staging),
               "--warningiserror", "--keep-going", "--all", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip()
        raise SiteBuildError(f"Jupyter Book failed (warnings count as errors):\n{log}")
    fresh = output.with_name(f".{output.name}.new")  # swapped in whole: never half a site
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(staging / "_build" / "html", fresh)
    if output.exists():
        shutil.rmtree(output)
    fresh.rename(output)
    names = ", ".join(ch.number for ch in chapters)
    print(f"rendered the intro and chapters {names} to {output / 'index.html'}")
    missing = sorted({p.stem for p in source_chapters()} - {ch.stem for ch in chapters})
    if missing:
        print(f"not executed in {executed}, so not on the site: {', '.join(missing)} "
              f"(`make tutorial` executes every chapter)")
    return output / "index.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executed", type=Path, default=ROOT / "build" / "executed",
                        help="folder of executed chapters (default build/executed)")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts",
                        help="folder of the metrics JSON the chapters wrote (default artifacts)")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--staging", type=Path, default=ROOT / "build" / "site_src")
    args = parser.parse_args()
    try:
        build_site(args.executed, args.artifacts, args.output, args.staging)
    except SiteBuildError as err:
        print(f"site not built: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
