# ModelLens: `make run` serves the dashboard, `make test` runs every check. Both set up a fresh machine.
#   PYTHON=3.13        the interpreter for a new virtualenv: a version or a path (default: the first of 3.11-3.13 found)
#   VENV=.venv313      the virtualenv's folder (default .venv), e.g. to test a second Python beside the first
SHELL := /bin/bash
PYTHON ?=
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Parallel test processes (pytest-xdist; each test file runs whole in one process): JOBS=1 for one process
JOBS ?= 2
# Where Azure AutoML runtimes live (ModelLens's default; the tests use the same one)
export MODELLENS_RUNTIMES ?= $(HOME)/.modellens/runtimes

.DEFAULT_GOAL := help
.PHONY: help run test lint pytest test-fast bench chromium automl-runtime clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.deps: requirements.txt constraints.txt scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh deps
	touch $@

$(VENV)/.dev: $(VENV)/.deps requirements-dev.txt
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh deps dev
	touch $@

$(VENV)/.project: $(VENV)/.deps pyproject.toml
	VENV=$(VENV) sh scripts/install.sh project
	touch $@

run: $(VENV)/.project ## Start the dashboard on http://localhost:8501 (PORT=n for another; demo until you upload)
	$(BIN)/modellens serve --port $(PORT)

chromium: ## Install Debian's Chromium for the browser tests if it is missing
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }

automl-runtime: $(VENV)/.project ## Install the Azure AutoML runtime (Python 3.10; ~3 min once) for AutoML models
	@command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y cmake g++; }
	$(BIN)/modellens runtime install azureml-automl

lint: $(VENV)/.dev ## ruff check, ruff format --check, mypy (strict, core/), hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

pytest: $(VENV)/.dev $(VENV)/.project chromium automl-runtime ## The whole pytest suite (unit, AppTest, AutoML, browser; JOBS=2 processes) + coverage
	mkdir -p test-artifacts/coverage
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile --cov --cov-report=term --cov-report=html

test: lint pytest ## Everything CI runs: lint + the whole test suite

test-fast: $(VENV)/.dev $(VENV)/.project ## Unit and AppTest only (no browser, no AutoML runtime, no slow tests)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile -m "not e2e and not slow and not automl"

bench: $(VENV)/.dev $(VENV)/.project chromium automl-runtime ## Benchmarks (speed is measured here, never asserted in tests)
	$(BIN)/python -m bench

fuzz: $(VENV)/.dev $(VENV)/.project ## Mutation fuzz of the safe unpickler (MODELLENS_FUZZ_SECONDS, default 600; make test runs 25 s)
	MODELLENS_FUZZ_SECONDS=$${MODELLENS_FUZZ_SECONDS:-600} $(BIN)/python -m pytest -q -p no:cacheprovider tests/core/test_fuzz.py

clean: ## Remove the virtualenv and caches (your ~/.modellens data is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
