# meshtrace: two commands for a newcomer, `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENV ?= lab
ARGS ?=

.PHONY: setup run test test-fast lab-up lab-down jupyter sync lint bench clean

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --upgrade pip
	@$(VPY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with everything the kit needs

run: $(STAMP) ## run the whole runbook on ENV (default: the embedded lab) and print the check table
	$(VPY) -m meshtrace run --env $(ENV) $(ARGS)

test: $(STAMP) ## run the whole test suite
	$(VPY) -m pytest $(ARGS)

test-fast: $(STAMP) ## unit tests only
	$(VPY) -m pytest tests/unit $(ARGS)

lab-up: $(STAMP) ## start the embedded lab in the background (.meshlab/)
	$(VPY) -m meshlab up $(ARGS)

lab-down: $(STAMP) ## stop the embedded lab
	$(VPY) -m meshlab down $(ARGS)

jupyter: $(STAMP) lab-up ## JupyterLab at notebooks/, with Jupytext pairing
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --no-browser --ServerApp.ip=127.0.0.1

sync: $(STAMP) ## re-sync every notebook pair (.py <-> .ipynb)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check lib tests notebooks/*.py

bench: $(STAMP) ## benchmarks under tests/benchmarks, written to runs/bench/
	$(VPY) -m pytest tests/benchmarks -p no:cacheprovider -q $(ARGS)

clean: ## remove runs/ and any lab state
	-$(VPY) -m meshlab down
	rm -rf runs .meshlab
