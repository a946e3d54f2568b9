# ChurnGuard: `make help` lists the targets. Every target uses the project's own virtualenv (.venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
.DEFAULT_GOAL := help

.PHONY: help install system-deps up train test test-unit test-integration lint format typecheck bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[train,serve,dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv with the train, serve and dev extras

system-deps: ## Install the Debian packages the integration tests run (nginx, prometheus, chromium; needs root)
	bash .ci/system-deps

up: install ## Run the local stack on embedded defaults (train + register the champion, print where to look)
	$(BIN)/python -m training run

train: install ## Train on DATA/SPEC (defaults: the committed data) into MLFLOW_TRACKING_URI or the embedded store
	$(BIN)/python -m training run $(if $(DATA),--data $(DATA)) $(if $(SPEC),--spec $(SPEC))

test: install ## Run every test tier that this machine can run (cluster e2e is skipped with its reason)
	bash .ci/test

test-unit: install ## Unit tests only (milliseconds, no I/O)
	$(BIN)/pytest -m unit -q

test-integration: install ## Integration tests only (real processes on loopback)
	$(BIN)/pytest -m integration -q

lint: install ## Ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy (strict) on training/ and predictor/
	$(BIN)/mypy

bench: install ## Benchmarks (print figures and ratios against a baseline run in the same process)
	$(BIN)/python bench/train_bench.py

clean: ## Remove the embedded MLflow store, reports and caches (.churnguard/, test output)
	rm -rf .churnguard test-output .pytest_cache .mypy_cache .ruff_cache
