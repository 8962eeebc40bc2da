# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install, install the data bundle, ingest its incidents, serve on http://127.0.0.1:5000
#               in public mode (HOTSPOTS_PUBLIC=1: anonymous visitors are viewers, small numbers suppressed;
#               PUBLIC=0 make run to require sign-in; add accounts with `.venv/bin/hotspots users add NAME --role ROLE`)
#   make test   create .venv with test extras, install Debian's chromium and nginx if missing, run the test suite
#   make serve-nginx   the app on 127.0.0.1:$(PORT) behind nginx on https://localhost:$(NGINX_PORT)/ (self-signed
#               certificate; docs/deployment.md)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BUNDLE ?= ../shared/data
HOST   ?= 127.0.0.1
PORT   ?= 5000
PUBLIC ?= 1
THREADS ?= 8
# 1 = analyses in a child process at lower priority (docs/deployment.md); 0 = on the pool's thread, which
# measured as well in the hostile mix with 360 MB less memory (docs/benchmarks.md)
ANALYSIS_PROCESSES ?= 0
PYTEST_ARGS ?=
NGINX_PORT ?= 8443
NGINX_HTTP_PORT ?= 8080
NGINX_DIR ?= instance/nginx

.PHONY: run test venv install install-test chromium nginx bundle ingest serve serve-nginx bench clean

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

# nginx for the production front and its test (tests/test_deploy.py); Debian puts it in /usr/sbin
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  echo "Installing Debian's nginx (the production front and its test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx >/dev/null; }

bundle: install
	$(BIN)/hotspots data install $(BUNDLE)

ingest: bundle
	$(BIN)/hotspots ingest --bundle

serve: install
	HOTSPOTS_PUBLIC=$(PUBLIC) HOTSPOTS_ANALYSIS_PROCESSES=$(ANALYSIS_PROCESSES) $(BIN)/hotspots serve --host $(HOST) --port $(PORT) --threads $(THREADS)

# never debug mode: `hotspots serve` is waitress with the app's debug switched off
run: ingest
	HOTSPOTS_PUBLIC=$(PUBLIC) HOTSPOTS_ANALYSIS_PROCESSES=$(ANALYSIS_PROCESSES) $(BIN)/hotspots serve --host $(HOST) --port $(PORT) --threads $(THREADS)

# The app on loopback with trusted_proxy, nginx in front (TLS with a self-signed certificate made once,
# per-address limits, short header timeouts); Ctrl+C stops both. Needs an installed bundle (make ingest).
serve-nginx: install nginx
	@mkdir -p $(NGINX_DIR)
	@[ -f $(NGINX_DIR)/tls/hotspots.crt ] || $(BIN)/hotspots deploy self-signed-cert \
	  --cert $(NGINX_DIR)/tls/hotspots.crt --key $(NGINX_DIR)/tls/hotspots.key
	$(BIN)/hotspots deploy nginx-config --out $(NGINX_DIR)/nginx.conf --https-port $(NGINX_PORT) \
	  --http-port $(NGINX_HTTP_PORT) --upstream-port $(PORT)
	HOTSPOTS_PUBLIC=$(PUBLIC) HOTSPOTS_TRUSTED_PROXY=1 HOTSPOTS_ANALYSIS_PROCESSES=$(ANALYSIS_PROCESSES) \
	  $(BIN)/hotspots serve --host 127.0.0.1 --port $(PORT) \
	  --threads $(THREADS) & APP=$$!; trap 'kill $$APP 2>/dev/null' EXIT INT TERM; \
	  NGINX=$$(command -v nginx || echo /usr/sbin/nginx); \
	  $$NGINX -p $(abspath $(NGINX_DIR))/ -c $(abspath $(NGINX_DIR))/nginx.conf -e $(abspath $(NGINX_DIR))/error.log \
	    -g 'daemon off;'

test: install-test chromium nginx
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/ingest.py --quick
	$(BIN)/python benchmarks/stats.py --quick

clean:
	rm -rf $(VENV) instance test-artifacts
