# Every target sets up .venv first (from pyproject.toml) if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint format docs serve-docs mermaid bench bench-check check clean

# The first run takes about a minute, mostly pip downloading the dev tools: say what is
# happening before each step, and let pip show its progress for the long install.
$(STAMP): pyproject.toml
	@echo "==> Setting up $(VENV) from pyproject.toml (first run, or pyproject.toml changed)"
	@echo "==> Creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> Upgrading pip in $(VENV)"
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	@echo "==> Installing exegraph and its dev tools (pytest, ruff, mypy, mkdocs, OpenTelemetry, dask);"
	@echo "    this takes a minute on a fresh machine"
	$(BIN)/python -m pip install -e . --group dev
	touch $(STAMP)
	@echo "==> $(VENV) is ready"

## demo: run the 13-step demo pipeline and print its result table
demo: $(STAMP)
	$(BIN)/python examples/demo_pipeline.py

## test: run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff (lint and format) and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## docs: build the documentation site strictly into site/ (self-contained: works offline)
docs: $(STAMP) mermaid
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## serve-docs: serve the documentation at http://127.0.0.1:8000, rebuilt on change
serve-docs: $(STAMP) mermaid
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

## mermaid: put the pinned Mermaid that draws the docs' diagrams in docs/generated/ (npm, once)
mermaid: $(STAMP)
	@echo "==> Checking the docs' copy of Mermaid (fetched with npm the first time)"
	$(BIN)/python docs/_vendor_mermaid.py

## bench: the whole benchmark (~30 min); writes bench/results/ and the table in bench/README.md
bench: $(STAMP)
	$(BIN)/python bench/run.py --update-readme

## bench-check: check every benchmarked runner is correct on every shape (seconds, no timing)
bench-check: $(STAMP)
	$(BIN)/python bench/run.py --check-only

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## check: everything CI runs (.ci/run also installs Chromium, npm and Graphviz when missing)
check: mermaid test lint docs bench-check

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
