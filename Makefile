# The README's two commands: `make demo` runs the main job locally, `make test` runs the tests.
# Both set everything up first (virtual environment, pip packages, pinned Azurite via npm ci).
# `make test-fast` leaves out the tests marked slow (tests/README.md): a quick check while working.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PIP := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
# Infrastructure scanners (checkov, check-jsonschema) live in their own venv: their pins clash with ours.
TOOLS := .venv-tools
STAMP_TOOLS := $(TOOLS)/.installed
# The console's browser test drives Debian's chromium through Playwright (whose wheel carries its
# driver, so no browser download): installed from apt like Azurite is from npm, once.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test test-fast bench serve clean

setup: $(STAMP_PIP) $(STAMP_NPM) $(STAMP_TOOLS) $(CHROMIUM)

$(STAMP_PIP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_TOOLS): requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP_PIP) $(STAMP_NPM)
	$(PY) -m devstack demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" -n 4 $(PYTEST_ARGS)

bench: $(STAMP_PIP) $(STAMP_NPM)
	$(PY) -m bench $(BENCH_ARGS)

serve: $(STAMP_PIP) $(STAMP_NPM)
	$(PY) -m devstack serve

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .pytest_cache
