# The two commands of the README: `make run` and `make test`.
# Everything is installed into .venv from the project's own files.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Not -q: pip's own lines show the install progressing (the first takes a minute or two).
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# Re-install when a dependency list changes.
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test test-server lint typecheck bench package clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version.split()[0]'
	@echo "==> Creating the virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(RUN_STAMP): $(BIN)/python pyproject.toml requirements.txt
	@echo "==> Installing the twin and its local host (.[local])"
	$(PIP) install -e ".[local]"
	@touch $@

$(TEST_STAMP): $(RUN_STAMP) infra/requirements.txt
	@echo "==> Installing the test tools (.[local,dev,web-tests])"
	$(PIP) install -e ".[local,dev,web-tests]"
	@echo "==> Installing the infrastructure tools (infra/requirements.txt)"
	$(PIP) install --no-compile -r infra/requirements.txt
	@# Browser tests use Debian's Chromium, never a browser downloaded by a test tool.
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser tests need Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
	@touch $@

## make run: the whole twin on http://127.0.0.1:7071 (API, web UI, timers, orchestrations, embedded database)
##   make run PORT=8080 HOST=0.0.0.0 DATA_DIR=/tmp/twin: another port, interface or data directory
# HOST counts only on the command line: some shells export HOST as the machine's name.
RUN_ARGS := $(if $(PORT),--port "$(PORT)") \
	$(if $(filter command line,$(origin HOST)),--host "$(HOST)") \
	$(if $(DATA_DIR),--data-dir "$(DATA_DIR)")
run: $(RUN_STAMP)
	$(BIN)/dtbase-local $(strip $(RUN_ARGS))

## make test: every test (embedded PostgreSQL unless DT_TEST_DATABASE_URL names a server)
test: $(TEST_STAMP)
	$(BIN)/python -m pytest

## make test-server: the suite again against the PostgreSQL server at 127.0.0.1:5432, database test
test-server: $(TEST_STAMP)
	DT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test $(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

## make bench: against a running `make run`, ingest 1,000,000 readings and time the queries
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/readings.py

## make package: dist/functionapp.zip and dist/static_web.zip for deployment
package: $(RUN_STAMP)
	$(BIN)/python infra/package.py

clean:
	rm -rf $(VENV) dist test-artifacts
