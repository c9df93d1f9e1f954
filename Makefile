# meshtrace: two commands for a newcomer, `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENV ?= lab
ARGS ?=
# make test: the suite on this many pytest-xdist workers, each test module one work unit (tests/conftest.py)
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

.PHONY: setup run test test-fast test-browser browser-deps lab-up lab-down jupyter kernel drill drill-hint drill-check sync lint bench clean

# root (CI, containers) needs --allow-root for JupyterLab and no sudo for apt-get
ROOT_USER := $(filter 0,$(shell id -u))
SUDO := $(if $(ROOT_USER),,sudo)
# the backend token shared by the lab and the notebooks' kernels: the caller's, else a fresh one per make run
# (it lives only in process environments, never in a file or on screen)
TOKEN := export MESHLAB_BACKEND_TOKEN="$${MESHLAB_BACKEND_TOKEN:-$$($(VPY) -c 'import secrets; print(secrets.token_urlsafe(24))')}"
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
# .py files open as notebooks (Jupytext), and no news pop-up over the outputs
LAB_OVERRIDES := {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}, "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
JUPYTER_LAB := JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks \
	--no-browser --ServerApp.ip=127.0.0.1 $(if $(ROOT_USER),--allow-root)
LAB_NOTE := A lab is already running in .meshlab/, started with another backend token than this shell's \
	MESHLAB_BACKEND_TOKEN, so the kit's exports would be rejected. Restart it with this session's token: make \
	lab-down, then make jupyter (or export the token the lab was started with before make jupyter).
# a drill by name: FAULT=<name>, or ENV=drill-<name>
DRILL = $(or $(FAULT),$(filter drill-%,$(ENV)))
DRILL_USAGE = { echo "usage: make $@ FAULT=<drill> (or ENV=drill-<drill>); the drills:"; $(VPY) -m meshtrace.drills list; exit 2; }

# pip's own chatter goes to .venv/install.log; on a failure that log is printed, so the error shows with its output
PIP := $(VPY) -m pip install --quiet --disable-pip-version-check --no-input
$(STAMP): pyproject.toml
	@test -x $(VPY) || { echo "creating .venv/ …"; $(PY) -m venv $(VENV); } || exit 1
	@echo "installing the kit into .venv/ (about a minute, once) …"
	@{ $(PIP) --upgrade pip && $(PIP) -e '.[dev]'; } >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; \
	  echo "make setup: installing into .venv/ failed (the output above is kept in $(VENV)/install.log)"; exit 1; }
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with everything the kit needs

run: $(STAMP) ## run the whole runbook on ENV (default: the embedded lab) and print the check table
	$(VPY) -m meshtrace run --env $(ENV) $(ARGS)

test: $(STAMP) browser-deps ## run the whole test suite (the browser test included) on TEST_WORKERS=2 workers
	$(VPY) -m pytest $(XDIST) $(ARGS)

test-browser: $(STAMP) browser-deps ## the JupyterLab browser test alone (screenshots in runs/browser/)
	$(VPY) -m pytest tests/browser $(ARGS)

browser-deps: ## Debian's chromium and chromium-driver for the browser test, installed when missing
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver with apt-get …"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

test-fast: $(STAMP) ## unit tests only
	$(VPY) -m pytest tests/unit $(ARGS)

lab-up: $(STAMP) ## start the embedded lab in the background (.meshlab/); export MESHLAB_BACKEND_TOKEN first
	@test -n "$$MESHLAB_BACKEND_TOKEN" || { echo "make lab-up: export MESHLAB_BACKEND_TOKEN first (any value, e.g." \
	  "export MESHLAB_BACKEND_TOKEN=\$$(openssl rand -hex 16)); the lab's backend accepts only that token, and" \
	  "make run / make jupyter in the same shell then send it. (make run alone starts and stops a lab of its own.)"; exit 2; }
	$(VPY) -m meshlab up $(ARGS)

lab-down: $(STAMP) ## stop the embedded lab
	$(VPY) -m meshlab down $(ARGS)

kernel: $(STAMP) ## the python3 kernelspec JupyterLab offers is this .venv's, and .py files open as notebooks
	@$(VPY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@mkdir -p $(LAB_SETTINGS) && printf '%s\n' '$(LAB_OVERRIDES)' > $(LAB_SETTINGS)/overrides.json

jupyter: kernel ## the lab (if not running) and JupyterLab at notebooks/ with Jupytext; prints the URL with a token
	@$(TOKEN); \
	if $(VPY) -m meshlab status >/dev/null 2>&1; then \
	  $(VPY) -m meshlab status --check-token >/dev/null 2>&1 || echo "$(LAB_NOTE)"; \
	else $(VPY) -m meshlab up || exit 1; fi; \
	echo "Open the URL below (with its token), then notebooks 00 to 08 in order."; \
	$(JUPYTER_LAB) $(ARGS)

drill: kernel ## start the lab broken for drill FAULT=<name>, show its symptoms (ANSWERS=1: and the answers), then JupyterLab (NO_JUPYTER=1: not)
	@test -n "$(DRILL)" || $(DRILL_USAGE)
	@$(TOKEN); $(VPY) -m meshtrace.drills start $(DRILL) $(if $(ANSWERS),--answers) || exit $$?; \
	if [ -z "$(NO_JUPYTER)" ]; then $(JUPYTER_LAB); fi

drill-hint: $(STAMP) ## the trainer reveals hint LEVEL=1..3 of drill FAULT=<name> (3 is the answer)
	@test -n "$(DRILL)" || $(DRILL_USAGE)
	@$(VPY) -m meshtrace.drills show $(DRILL) --hints $(or $(LEVEL),1)

drill-check: $(STAMP) ## is drill FAULT=<name> fixed? traffic, verify, troubleshoot on the lab; exit 0 only when fixed
	@test -n "$(DRILL)" || $(DRILL_USAGE)
	@$(VPY) -m meshtrace.drills check $(DRILL)

sync: $(STAMP) ## re-sync every notebook pair (.py <-> .ipynb)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py

lint: $(STAMP) ## ruff and the type checker (mypy on lib/)
	$(VENV)/bin/ruff check lib tests notebooks/*.py
	$(VENV)/bin/mypy

bench: $(STAMP) ## benchmarks under tests/benchmarks, written to runs/bench/
	$(VPY) tests/benchmarks/run_all.py $(ARGS)

clean: ## remove runs/ and any lab state
	-$(VPY) -m meshlab down
	rm -rf runs .meshlab
