# closedloop — `make demo` to try it, `make test` to check everything.
# Both work on a fresh clone with Python 3.11 and Node.js/npm; running them again
# reuses the virtualenv, node_modules and database (stamp files under .venv/).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_WORKERS ?= 2
TEST_VAR := $(CURDIR)/var/test
# Test runs do not read the developer's closedloop.env (its DATABASE_URL, DEBUG …).
TEST_ENV := CLOSEDLOOP_ENV_FILE=/dev/null VAR_DIR=$(TEST_VAR)
PYTEST := $(BIN)/pytest -q -p no:randomly
UNIT_MARKERS := -m "not e2e and not integration"
MYPY_DIRS := src/closedloop/core src/closedloop/accounts src/closedloop/feedback src/closedloop/polls
MYPY_PATHS = $(MYPY_DIRS) $(filter-out $(addsuffix /%,$(MYPY_DIRS)), \
	$(wildcard src/closedloop/*/services.py src/closedloop/*/selectors.py))
VENDOR_STAMP := $(VENV)/.vendored
# pytest exits with 5 when a group has no tests yet; that is not a failure.
ALLOW_EMPTY := || { rc=$$?; [ $$rc -eq 5 ] && echo "(no tests in this group)"; [ $$rc -eq 5 ]; }

.PHONY: help demo test lint typecheck migrations-check test-sqlite test-postgres \
	test-integration test-e2e bench clean-test

help:
	@echo "make demo              set up and run the demo on http://127.0.0.1:$(PORT)"
	@echo "make test              lint, types, migrations, SQLite, PostgreSQL, integration, e2e"
	@echo "make lint | typecheck | migrations-check | test-sqlite | test-postgres"
	@echo "make test-integration | test-e2e | bench"

# --- installation ------------------------------------------------------------------

$(BIN)/python:
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENDOR_STAMP): node_modules/.installed scripts/vendor_assets.py | $(BIN)/python
	$(BIN)/python scripts/vendor_assets.py
	touch $@

closedloop.env: | $(BIN)/python
	@umask 077; { echo "DEBUG=True"; \
	  echo "SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')"; \
	} > $@
	@echo "wrote closedloop.env (DEBUG=True and a new SECRET_KEY)"

# --- the demo ----------------------------------------------------------------------

demo: $(VENV)/.installed $(VENDOR_STAMP) closedloop.env
	$(BIN)/closedloop demo --port $(PORT)

# --- the tests ---------------------------------------------------------------------

test-deps: $(VENV)/.installed-test $(VENDOR_STAMP)
	@mkdir -p $(TEST_VAR)/static
.PHONY: test-deps

test: lint typecheck migrations-check test-sqlite test-postgres test-integration test-e2e
	@echo "make test: all passed"

lint: test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: test-deps
	$(TEST_ENV) DEBUG=True $(BIN)/mypy $(MYPY_PATHS)

migrations-check: test-deps
	$(TEST_ENV) DEBUG=True DATABASE_URL= $(BIN)/closedloop makemigrations --check --dry-run

test-sqlite: test-deps
	$(TEST_ENV) DATABASE_URL= $(PYTEST) -n $(PYTEST_WORKERS) $(UNIT_MARKERS)

# DATABASE_URL from the environment when it names PostgreSQL, else a throwaway server.
test-postgres: test-deps
	@if [[ "$${DATABASE_URL:-}" == postgres* ]]; then \
	  echo "PostgreSQL from DATABASE_URL"; \
	  $(TEST_ENV) $(PYTEST) -n $(PYTEST_WORKERS) $(UNIT_MARKERS); \
	else \
	  $(TEST_ENV) $(BIN)/python scripts/pgserver.py run -- \
	    $(PYTEST) -n $(PYTEST_WORKERS) $(UNIT_MARKERS); \
	fi

test-integration: test-deps
	$(TEST_ENV) DATABASE_URL= $(PYTEST) -m integration $(ALLOW_EMPTY)

test-e2e: test-deps
	$(TEST_ENV) DATABASE_URL= $(PYTEST) -m e2e $(ALLOW_EMPTY)

bench: $(VENV)/.installed
	@if [ -f benchmarks/__main__.py ]; then \
	  $(TEST_ENV) DEBUG=True $(BIN)/python -m benchmarks registry; \
	else echo "no benchmarks yet"; fi

clean-test:
	rm -rf $(TEST_VAR)
