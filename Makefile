# lorafm: `make tutorial` (main job) and `make test` each do all of their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: tutorial test data notebooks site bench lab lint clean help

help:
	@echo "make tutorial  set up, execute every chapter into build/executed/ (artifacts/), render build/site/"
	@echo "make test      set up, then run every test (unit, notebooks, site, browser)"
	@echo "make data      make Fashion-MNIST available (Debian package, else download)"
	@echo "make site      re-render build/site/ from build/executed/ (no re-execution)"
	@echo "make lab       set up, then open the chapters in JupyterLab (localhost only, with a token)"
	@echo "make bench     measure training, LoRA and inference speed: benchmarks/results.json, README tables"
	@echo "make lint      ruff on the package, tests, tools and notebooks"
	@echo "make clean     remove build/ and artifacts/ (keeps .venv and data)"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

data: $(STAMP)
	$(PY) tools/ensure_data.py

notebooks: $(STAMP) data
	$(PY) tools/run_notebooks.py

tutorial: notebooks
	$(PY) tools/build_site.py

site: $(STAMP)
	$(PY) tools/build_site.py

test: $(STAMP) data
	$(PY) -m pytest

bench: $(STAMP) data
	$(PY) benchmarks/bench.py

lab: $(STAMP) data
	$(PY) tools/lab.py

lint: $(STAMP)
	$(PY) -m ruff check lorafm_helpers tests tools benchmarks notebooks

clean:
	rm -rf build artifacts .pytest_cache .ruff_cache
