"""The tutorial site: built from the chapters this test session executed, checked in Chromium.

The build checks (refusals, warnings as errors, progress bars) run on small hand-made notebooks;
the browser tests render every chapter the session executed, serve the site on 127.0.0.1 and
drive Debian's Chromium through Playwright. Screenshots go to build/screenshots/.
"""

from __future__ import annotations

import json
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from build_site import (
    INTRO_TEMPLATE,
    WIDGET_STATE,
    WIDGET_VIEW,
    SiteBuildError,
    build_site,
    chapter_info,
    check_executed,
    format_duration,
    progress_text,
    what_you_learn,
)
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from playwright.sync_api import sync_playwright
from results_table import COLUMNS as RESULT_COLUMNS
from results_table import results_rows
from run_notebooks import chapters

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEMS = [p.stem for p in chapters()]


# --- the build, on small hand-made notebooks ------------------------------------------------

def executed_notebook(*cells, exception: bool = False) -> nbformat.NotebookNode:
    """A notebook as papermill leaves it: papermill metadata, numbered code cells."""
    nb = new_notebook(cells=[new_markdown_cell("# 01 · A tiny chapter\n\n**What you will learn**\n\n"
                                               "- one thing;\n- another,\n  on two lines.\n"), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["papermill"] = {"duration": 75.4, "exception": exception}
    return nb


def ran(source: str, n: int, *outputs) -> nbformat.NotebookNode:
    """A code cell that ran as the `n`-th execution, with these outputs."""
    return new_code_cell(source, execution_count=n, outputs=list(outputs))


def test_refuses_a_notebook_that_was_not_executed():
    with pytest.raises(SiteBuildError, match="never executed"):
        check_executed(executed_notebook(ran("x = 1", 1), new_code_cell("y = 2")), "01_tiny.ipynb")
    unexecuted = executed_notebook(ran("x = 1", 1))
    del unexecuted.metadata["papermill"]
    with pytest.raises(SiteBuildError, match="not executed"):
        check_executed(unexecuted, "01_tiny.ipynb")


def test_refuses_a_notebook_whose_execution_failed():
    error = new_output("error", ename="ValueError", evalue="boom", traceback=["ValueError: boom"])
    with pytest.raises(SiteBuildError, match="ValueError: boom"):
        check_executed(executed_notebook(ran("raise ValueError('boom')", 1, error)), "01_tiny.ipynb")
    with pytest.raises(SiteBuildError, match="raised an exception"):
        check_executed(executed_notebook(ran("x = 1", 1), exception=True), "01_tiny.ipynb")


def test_refuses_application_json_outputs():
    output = new_output("display_data", data={"application/json": {"a": 1}, "text/plain": "{'a': 1}"})
    with pytest.raises(SiteBuildError, match="application/json"):
        check_executed(executed_notebook(ran("display(d)", 1, output)), "01_tiny.ipynb")


def test_chapter_table_facts_come_from_the_notebook():
    chapter = chapter_info(executed_notebook(ran("x = 1", 1)), "01_tiny")
    assert (chapter.number, chapter.title) == ("01", "A tiny chapter")
    assert chapter.learn == ["one thing", "another, on two lines"]
    assert format_duration(chapter.seconds) == "1 min 15 s"
    assert format_duration(42.6) == "43 s"
    assert what_you_learn("\nFirst paragraph\nwraps.\n\nSecond.") == ["First paragraph wraps."]


def tqdm_output_and_state() -> tuple[nbformat.NotebookNode, dict]:
    """A tqdm bar as papermill saves it: a widget view whose final state is in the metadata."""
    output = new_output("display_data", data={
        WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0},
        "text/plain": "train:   0%|          | 0/4 [00:00<?, ?epoch/s]"})
    state = {
        "box": {"model_name": "HBoxModel",
                "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "train:\u2007100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 4.0, "max": 4.0}},
        "r": {"model_name": "HTMLModel",
              "state": {"value": "\u20074/4\u2007[00:02&lt;00:00,\u20071.9epoch/s]"}},
    }
    return output, state


def test_progress_bar_becomes_its_final_text():
    output, state = tqdm_output_and_state()
    assert progress_text(output, state) == "train: 100%|██████████| 4/4 [00:02<00:00, 1.9epoch/s]"
    assert progress_text(output, {}) is None  # no saved state: the text/plain stays


def test_build_renders_warning_free_and_refuses_warnings(tmp_path, monkeypatch):
    monkeypatch.setattr("build_site.results_markdown", lambda _: "| a | b |\n|---|---|\n| 1 | 2 |\n")
    output, state = tqdm_output_and_state()
    nb = executed_notebook(ran("fit()", 1, output))
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    executed = tmp_path / "executed"
    executed.mkdir()
    nbformat.write(nb, executed / "01_tiny.ipynb")
    index = build_site(executed, tmp_path / "artifacts", tmp_path / "site", tmp_path / "staging")
    page = (tmp_path / "site" / "01_tiny.html").read_text()
    assert index.is_file() and "01_tiny.html" in index.read_text()
    assert "4/4 [00:02&lt;00:00, 1.9epoch/s]" in page and WIDGET_VIEW not in page
    assert "cdn.jsdelivr" not in page  # no widget JavaScript from the internet

    nb.cells.append(new_markdown_cell("See [the missing chapter](99_missing.ipynb)."))
    nbformat.write(nb, executed / "01_tiny.ipynb")
    with pytest.raises(SiteBuildError, match="99_missing"):
        build_site(executed, tmp_path / "artifacts", tmp_path / "site", tmp_path / "staging")
    assert "99_missing" not in (tmp_path / "site" / "01_tiny.html").read_text()  # old site kept


# --- the real site, in Chromium ---------------------------------------------------------------

class SiteServer(ThreadingHTTPServer):
    """Serves the built site on 127.0.0.1 and remembers every request it answered with an error."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        self.failures: list[tuple[str, int]] = []
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(root)))

    def handle_error(self, request, client_address) -> None:
        pass  # the browser closing a connection early is not a failure of the site


class _Handler(SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        if str(code).isdigit() and int(code) >= 400:
            self.server.failures.append((self.path, int(code)))

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def site(series, tmp_path_factory) -> Path:
    """The site rendered from the chapters this session executed (executing them if needed)."""
    series.run_all()
    base = tmp_path_factory.mktemp("site")
    build_site(series.executed, series.artifacts, base / "html", base / "staging")
    return base / "html"


@pytest.fixture(scope="module")
def server(site):
    httpd = SiteServer(site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, "
                    f"as .ci/run does).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One page opened in a fresh tab, with every failed local request and script error noted.
    Requests for anything outside the local server (the MathJax CDN) are blocked."""

    def __init__(self, browser, server: SiteServer, name: str) -> None:
        self.base = f"http://127.0.0.1:{server.server_port}/"
        self.server = server
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1440, "height": 900})
        self.page.route("**/*", self._local_only)  # a test never touches the network
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url}: {r.status}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        server.failures.clear()
        response = self.page.goto(self.base + name, wait_until="load")
        assert response is not None and response.ok, f"{name}: {response and response.status}"

    def _local_only(self, route) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            route.abort()

    def local_failures(self) -> list[str]:
        local = [f for f in self.failed if f.startswith(self.base)]
        return local + [f"{path}: {code}" for path, code in self.server.failures]

    def close(self) -> None:
        self.page.close()


def first_heading(markdown: str) -> str:
    return re.search(r"^# +(.+)$", markdown, flags=re.MULTILINE).group(1).strip()


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.browser
@pytest.mark.notebook
@pytest.mark.parametrize("stem", STEMS)
def test_chapter_page(stem, series, site, server, browser):
    nb = nbformat.read(series.executed / f"{stem}.ipynb", as_version=4)
    heading = first_heading(nb.cells[0].source)
    visit = Visit(browser, server, f"{stem}.html")
    page = visit.page
    try:
        assert page.title().split(" — ")[0] == heading
        assert squash(page.locator("article h1").first.inner_text()).rstrip("#").strip() == heading

        figures = page.eval_on_selector_all("div.cell_output img", "imgs => imgs.map(i => i.naturalWidth)")
        assert figures and all(w > 0 for w in figures), f"figures and their widths: {figures}"
        broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.naturalWidth).map(i => i.src)")
        assert broken == []
        unzoomable = page.eval_on_selector_all(  # a scaled-down figure opens at full size (lorafm.js)
            "div.cell_output img", "imgs => imgs.filter(i => i.naturalWidth > i.clientWidth + 1"
                                   " && !i.closest('a.lorafm-zoom')).map(i => i.src)")
        assert unzoomable == []

        assert page.locator("div.cell_output .traceback").count() == 0
        assert "Traceback (most recent call last)" not in page.inner_text("article")
        assert visit.local_failures() == []
        assert visit.errors == []

        # the defaults are shown, papermill's injected overrides are not
        assert page.locator("div.cell.tag_parameters").count() == 1
        assert page.locator("div.cell.tag_injected-parameters").count() == 0

        # progress bars: readable final text, no widget that needs JavaScript from the internet
        assert page.locator('script[type^="application/vnd.jupyter.widget"]').count() == 0
        state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        text = squash(page.inner_text("article"))
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                bar = progress_text(output, state)
                assert bar is None or squash(bar) in text

        # navigation moves through the chapters in order
        i = STEMS.index(stem)
        previous = "index.html" if i == 0 else f"{STEMS[i - 1]}.html"
        assert page.locator("a.left-prev").get_attribute("href") == previous
        if i + 1 < len(STEMS):
            assert page.locator("a.right-next").get_attribute("href") == f"{STEMS[i + 1]}.html"
        else:
            assert page.locator("a.right-next").count() == 0

        if i == 0:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"), full_page=True)
    finally:
        visit.close()


@pytest.mark.browser
@pytest.mark.notebook
def test_intro_page(series, site, server, browser):
    visit = Visit(browser, server, "index.html")
    page = visit.page
    try:
        assert page.title().split(" — ")[0] == first_heading(INTRO_TEMPLATE.read_text())
        assert visit.local_failures() == [] and visit.errors == []

        rows = page.locator("table.chapter-table tbody tr")
        assert rows.count() == len(STEMS)
        for i, stem in enumerate(STEMS):
            chapter = chapter_info(nbformat.read(series.executed / f"{stem}.ipynb", as_version=4), stem)
            cells = rows.nth(i).locator("td")
            assert cells.nth(0).inner_text().strip() == chapter.number
            assert cells.nth(1).inner_text().strip() == chapter.title
            assert cells.nth(1).locator("a").get_attribute("href") == f"{stem}.html"
            assert cells.nth(2).locator("li").count() == len(chapter.learn) > 0
            assert cells.nth(3).inner_text().strip() == format_duration(chapter.seconds)
        assert page.locator("a.right-next").get_attribute("href") == f"{STEMS[0]}.html"

        # the results table shows the numbers in the chapters' JSON, row by row
        expected = results_rows(series.artifacts)
        table = page.locator("section#results table")
        header = [squash(t) for t in table.locator("thead th").all_inner_texts()]
        shown = [[squash(t) for t in row.locator("td").all_inner_texts()]
                 for row in table.locator("tbody tr").all()]
        assert len(shown) == len(expected) > 0
        for cells, row in zip(shown, expected, strict=True):
            assert cells[0] == row["label"]
            values = dict(zip(header[1:], cells[1:], strict=True))
            tolerance = 0.005 if row["published"] else 0.0005  # shown with 2 or 3 decimals
            for key, title in RESULT_COLUMNS:
                number = float(values[title].replace(",", ""))
                assert abs(number - row[key]) <= (0 if key == "trainable_params" else tolerance), title
        baseline = json.loads((series.artifacts / "baseline_metrics.json").read_text())
        assert shown[0][header.index("test accuracy")] == f"{baseline['accuracy']:.3f}"
        assert shown[0][header.index("trainable parameters")] == f"{baseline['parameters']:,}"

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)
    finally:
        visit.close()
