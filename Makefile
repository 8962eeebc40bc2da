# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install, install the data bundle, ingest its incidents, serve on http://127.0.0.1:5000
#               in public mode (HOTSPOTS_PUBLIC=1: anonymous visitors are viewers, small numbers suppressed;
#               PUBLIC=0 make run to require sign-in; add accounts with `.venv/bin/hotspots users add NAME --role ROLE`)
#   make test   create .venv with test extras, install Debian's chromium if missing, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BUNDLE ?= ../shared/data
HOST   ?= 127.0.0.1
PORT   ?= 5000
PUBLIC ?= 1
THREADS ?= 8
PYTEST_ARGS ?=

.PHONY: run test venv install install-test chromium bundle ingest serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium (needed by the browser tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

bundle: install
	$(BIN)/hotspots data install $(BUNDLE)

ingest: bundle
	$(BIN)/hotspots ingest --bundle

serve: install
	HOTSPOTS_PUBLIC=$(PUBLIC) $(BIN)/hotspots serve --host $(HOST) --port $(PORT) --threads $(THREADS)

# never debug mode: `hotspots serve` is waitress with the app's debug switched off
run: ingest
	HOTSPOTS_PUBLIC=$(PUBLIC) $(BIN)/hotspots serve --host $(HOST) --port $(PORT) --threads $(THREADS)

test: install-test chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/ingest.py --quick
	$(BIN)/python benchmarks/stats.py --quick

clean:
	rm -rf $(VENV) instance test-artifacts
