"""The learner's path: JupyterLab as `make lab` starts it, a chapter opened and run in a real browser.

The server serves a temporary copy of the chapters, with its runtime files, settings and IPython
history in the same temporary folder: nothing is written into the repository or the home folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from lab import lab_command, lab_environment
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import expect, sync_playwright
from run_notebooks import NOTEBOOKS, ROOT, chapters

CHAPTER = "02_lora_layer_math"
SCREENSHOT = ROOT / "build" / "screenshots" / "lab_02.png"
PROGRESS_SCREENSHOT = ROOT / "build" / "screenshots" / "lab_progress.png"
PYTHON3 = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
PROGRESS_CELL = """import torch
from lorafm_helpers import DeepNN, fit

x, y = torch.randn(512, 784), torch.randint(0, 10, (512,))
history = fit(DeepNN(), x, y, epochs=3, desc="three quick epochs")"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Generous: a loaded 2-core CI machine starts the server, the kernel and torch slowly.
SERVER_START_S = 180
PAGE_LOAD_MS = 180_000
RUN_ALL_MS = 1_200_000
SHUTDOWN_S = 30
TQDM_TEXT = re.compile(r"\d+/\d+ \[\d+:\d\d")  # tqdm's text bar: "3/15 [00:12<00:24, ..."

# True once "Run All" has finished: the kernel is idle, no cell is queued or running ([*]) and the
# first code cell has an execution count. A failing cell leaves the cells after it at [ ].
RUN_FINISHED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
  return status === 'idle' && prompts.length > 0 && /^\\[\\d+\\]:$/.test(prompts[0])
    && !prompts.includes('[*]:');
}"""


@dataclass
class Lab:
    """A running JupyterLab: its address, token and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path


def wait_for_server(process: subprocess.Popen, runtime_dir: Path, log: Path) -> dict:
    """The server's own info file (address, port, token), which it writes once it listens."""
    deadline = time.monotonic() + SERVER_START_S
    info_file = runtime_dir / f"jpserver-{process.pid}.json"
    while not info_file.is_file():
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not start within {SERVER_START_S} s:\n{log.read_text()}")
        time.sleep(0.2)
    return json.loads(info_file.read_text())


def stop(process: subprocess.Popen) -> list[str]:
    """Stop the server and every process it started; returns those still alive (none, normally).

    Kernels run in sessions of their own, so they are collected before the server goes away.
    """
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for sig in (signal.SIGTERM, signal.SIGKILL):  # on SIGTERM the server shuts its kernels down
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=SHUTDOWN_S)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    _, alive = psutil.wait_procs(family, timeout=SHUTDOWN_S)
    for child in alive:
        child.kill()
    _, alive = psutil.wait_procs(alive, timeout=SHUTDOWN_S)
    server = [f"server pid {process.pid}"] if process.poll() is None else []
    return server + [f"{child.name()} pid {child.pid}" for child in alive]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab started like `make lab`, on a free loopback port with a token, always stopped."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"  # ARTIFACTS_DIR = "../artifacts" lands in base/artifacts
    root.mkdir()
    for chapter in chapters():
        shutil.copy2(chapter, root)
    jupyter = base / "jupyter"
    settings = jupyter / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)  # no "get Jupyter news?" toast over the notebook
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(24)
    env = lab_environment() | {
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    log = base / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(lab_command(root, port=0, open_browser=False), env=env, cwd=base,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info = wait_for_server(process, jupyter / "runtime", log)
        assert info["hostname"] == "127.0.0.1" and info["token"] == token, info
        yield Lab(url=info["url"], token=token, root=root, log=log)
    finally:
        left = stop(process)
        assert not left, f"processes left running after the server was stopped: {left}"


@pytest.fixture(scope="module")
def page(lab):
    """A headless Chromium page (Debian's chromium, never a downloaded browser)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1400})
        finally:
            browser.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Scroll an element to the top of the notebook until it stays there: JupyterLab sizes cells that were
# off screen only once they are shown, which moves everything below them.
SCROLL_TO = """async element => {
  const frames = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  for (let attempt = 0; attempt < 20; attempt++) {
    element.scrollIntoView({block: 'start'});
    await frames();
    const before = element.getBoundingClientRect().top;
    await frames();
    const box = element.getBoundingClientRect();
    if (box.top === before && box.height > 0 && box.top >= 0 && box.top < innerHeight) return true;
  }
  return false;
}"""


def scroll_to(locator) -> bool:
    """Scroll the element `locator` finds into view; True once it is steadily in view."""
    return locator.evaluate(SCROLL_TO)


def menu(page, menu_name: str, command: str) -> None:
    """Click a JupyterLab menu item, as a learner does: e.g. Run > Run All Cells."""
    page.locator(".lm-MenuBar-item", has_text=menu_name).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def run_all(page, lab: Lab, name: str):
    """Open notebook `name` in JupyterLab, Run > Run All Cells, wait until it is done, File > Save.

    Returns the notebook's panel.
    """
    page.goto(f"{lab.url}lab/tree/{name}?reset&token={lab.token}", timeout=PAGE_LOAD_MS)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    # The notebook's kernelspec, python3, starts by itself: the learner picks nothing.
    kernel = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')
    expect(kernel).to_have_text(re.compile(r"^Python 3.*\| Idle$"), timeout=PAGE_LOAD_MS)
    menu(page, "Run", "runmenu:run-all")
    expect(panel.locator(".jp-CodeCell .jp-InputPrompt").first).not_to_have_text("[ ]:", timeout=PAGE_LOAD_MS)
    page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_MS, polling=1000)
    menu(page, "File", "docmanager:save")
    page.locator(".lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached", timeout=PAGE_LOAD_MS)
    return panel


def screenshot(page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))


def check_ran_cleanly(panel, saved: Path) -> None:
    """Every code cell shows an execution count, none an error, and no progress bar is plain text."""
    shown = [p.strip() for p in panel.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()]
    cells = nbformat.read(saved, as_version=4).cells
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(cells)
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    unexecuted = [i for i, p in enumerate(shown) if not re.fullmatch(r"\[\d+\]:", p)]
    assert not unexecuted, f"code cells {unexecuted} did not run: {shown}"
    stderr = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    progress_text = [t for t in stderr.all_text_contents() if TQDM_TEXT.search(t)]
    assert not progress_text, f"progress bars rendered as text, not as widgets: {progress_text}"


@pytest.mark.browser
def test_chapter_runs_in_jupyterlab(lab, page):
    source = NOTEBOOKS / f"{CHAPTER}.ipynb"
    committed = digest(source)
    try:
        panel = run_all(page, lab, source.name)
        outputs = panel.locator(".jp-OutputArea-output")
        figure = outputs.locator("img").first
        assert scroll_to(figure), "no figure can be scrolled into view"
        assert figure.is_visible() and figure.evaluate("img => img.naturalWidth") > 0
        line = page.locator(".jp-OutputArea-output", has_text="30,352")
        assert scroll_to(panel.locator(".jp-CodeCell").filter(has=line).first), "no output shows 30,352"
    finally:  # also a picture of what went wrong
        screenshot(page, SCREENSHOT)
    check_ran_cleanly(panel, lab.root / source.name)
    assert "30,352" in "\n".join(outputs.all_text_contents())
    assert digest(source) == committed, "running in JupyterLab changed the committed notebook"


@pytest.mark.browser
def test_training_progress_bar_is_a_widget(lab, page):
    """lorafm_helpers.fit's tqdm.auto bar renders as an ipywidgets progress bar, not as text."""
    name = "progress_bar.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(PROGRESS_CELL)], metadata=PYTHON3), lab.root / name)
    try:
        panel = run_all(page, lab, name)
        expect(panel.locator(".jp-OutputArea-output .widget-hprogress")).to_have_count(1)
        expect(panel.locator(".jp-OutputArea-output .widget-html").last).to_contain_text("3/3")
    finally:
        screenshot(page, PROGRESS_SCREENSHOT)
    check_ran_cleanly(panel, lab.root / name)
