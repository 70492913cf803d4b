# tokenops: `make demo` runs the main job, `make test` runs every test.
# Both set everything up themselves: the virtualenv, Python packages, Prometheus and
# Alertmanager from Debian, and (on first use) the Kafka jars from Maven Central.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help setup demo test test-unit lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/tokenops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/tokenops ## Create the virtualenv and install tokenops and the system packages
	@bash deploy/local/install-system-deps.sh

demo: setup ## Run the main job: the local stack and a pipeline run, end to end
	$(BIN)/tokenops demo

test: setup ## Run every test (unit, integration, e2e, deploy checks)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## Run the unit tests only (no servers)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff (format + check), mypy and the import contracts (pyproject.toml)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	@$(PY) deploy/local/typecheck_view.py .typecheck
	$(BIN)/mypy .typecheck/tokenops
	cd .typecheck && $(abspath $(BIN))/lint-imports ../pyproject.toml --no-cache

format: setup ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## Run the benchmarks and rewrite docs/benchmarks.md
	$(PY) -m bench

clean: ## Remove the virtualenv and build leftovers (never the stack's data)
	rm -rf $(VENV) .typecheck build *.egg-info .mypy_cache .ruff_cache .pytest_cache
