# ChurnGuard: `make help` lists the targets. Every target uses the project's own virtualenv (.venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
.DEFAULT_GOAL := help

.PHONY: help install lock chart-docs images test-containers system-deps up train serve-ui test test-unit test-integration test-chart lint format typecheck bench clean

# Local stack ports (all on 127.0.0.1).
MLFLOW_PORT ?= 5000
PREDICTOR_PORT ?= 8080
UI_PORT ?= 8081
PROMETHEUS_PORT ?= 9090
PREDICTOR_URL ?= http://127.0.0.1:$(PREDICTOR_PORT)
STACK := $(CURDIR)/.churnguard/stack
# Wait up to 60 s for a URL to answer 200 (no curl needed).
WAIT_FOR := $(BIN)/python -c 'import sys, time, urllib.request as u; exec("for _ in range(120):\n try:\n  u.urlopen(sys.argv[1], timeout=2); sys.exit(0)\n except Exception:\n  time.sleep(0.5)\nsys.exit(1)")'

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[train,serve,dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv with the train, serve and dev extras, at the versions of requirements.lock

lock: install ## Re-resolve requirements.lock from pyproject.toml's ranges (newest versions that fit)
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --no-header --quiet -o requirements.lock.new
	{ sed -n '1,2p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp && rm requirements.lock.new && mv requirements.lock.tmp requirements.lock

chart-docs: install ## Regenerate charts/churnguard/README.md (its values table) from values.yaml
	$(BIN)/python -m tests.chart.values_readme

images: ## Build the serve, train and ui images on local Debian bases, no registry (root + Docker engine)
	bash k8s/local-images.sh

system-deps: ## Install the Debian packages the integration tests run (nginx, prometheus, chromium; needs root)
	bash .ci/system-deps

up: install ## Run the local stack on loopback: MLflow server, first training, predictor, UI (nginx), Prometheus
	@mkdir -p $(STACK)/logs
	@trap 'trap - EXIT; kill $$(jobs -p) 2>/dev/null; wait; echo "stopped"' EXIT INT TERM; \
	export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT); \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri sqlite:///$(STACK)/mlflow.db --artifacts-destination $(STACK)/artifacts \
	  --serve-artifacts --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 > $(STACK)/logs/mlflow.log 2>&1 & \
	$(WAIT_FOR) $$MLFLOW_TRACKING_URI/health || { echo "MLflow did not start: $(STACK)/logs/mlflow.log"; exit 1; }; \
	$(BIN)/python -m training champion >/dev/null 2>&1 || $(BIN)/python -m training run || exit 1; \
	CHURN_INFERENCE_LOG_DIR=$(STACK)/inference-log CHURN_MLFLOW_UI_URL=$$MLFLOW_TRACKING_URI \
	  $(BIN)/python -m predictor --http_port $(PREDICTOR_PORT) > $(STACK)/logs/predictor.log 2>&1 & \
	$(WAIT_FOR) $(PREDICTOR_URL)/v2/health/ready || { echo "predictor not ready: $(STACK)/logs/predictor.log"; exit 1; }; \
	if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then $(MAKE) --no-print-directory serve-ui & \
	  else echo "UI: install Debian nginx to serve ui/ (make system-deps)"; fi; \
	$(BIN)/python -m monitoring.prometheus --target 127.0.0.1:$(PREDICTOR_PORT) --port $(PROMETHEUS_PORT) & \
	sleep 3; \
	echo "MLflow:      $$MLFLOW_TRACKING_URI"; \
	echo "Predictor:   $(PREDICTOR_URL)/v1/models/churnguard:predict  (metrics: $(PREDICTOR_URL)/metrics)"; \
	echo "Logs:        $(STACK)/logs; inference log: $(STACK)/inference-log"; \
	echo "Ctrl-C stops everything."; \
	wait

serve-ui: ## Serve ui/ through Debian nginx on UI_PORT (8081) in front of the predictor at PREDICTOR_URL
	@mkdir -p $(STACK)/nginx/logs
	@sed -e 's#root /usr/share/nginx/html;#root $(CURDIR)/ui;#' -e 's#listen 8080;#listen 127.0.0.1:$(UI_PORT);#' \
	  -e 's#$${PREDICTOR_UPSTREAM}#$(PREDICTOR_URL)#' -e 's#$${NGINX_RESOLVERS}#127.0.0.1#' ui/nginx.conf > $(STACK)/nginx/nginx.conf
	@echo "UI:          http://127.0.0.1:$(UI_PORT)/  (predictor $(PREDICTOR_URL))"
	@PATH="$$PATH:/usr/sbin" nginx -p $(STACK)/nginx -c $(STACK)/nginx/nginx.conf -g 'daemon off;'

train: install ## Train on DATA/SPEC (defaults: the committed data) into MLFLOW_TRACKING_URI or the embedded store
	$(BIN)/python -m training run $(if $(DATA),--data $(DATA)) $(if $(SPEC),--spec $(SPEC))

test: install ## Run every test tier that this machine can run (cluster e2e is skipped with its reason)
	bash .ci/test

test-chart: install ## Chart and delivery-file checks (Helm SDK, k8s/CRD schemas, actionlint, hadolint, shellcheck)
	$(BIN)/pytest -q tests/chart

test-unit: install ## Unit tests only (milliseconds, no I/O)
	$(BIN)/pytest -m unit -q

test-integration: install ## Integration tests only (real processes on loopback)
	$(BIN)/pytest -m integration -q

test-containers: install ## Container tier: build the images on local bases, run the chart's pods as containers (root + Docker)
	$(BIN)/pytest -q tests/containers

lint: install ## Ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy (strict) on contract/, training/ and predictor/
	$(BIN)/mypy

bench: install ## Benchmarks: training vs the reference configuration, serving vs a reference-like server
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/serve_bench.py

clean: ## Remove the embedded MLflow store, reports and caches (.churnguard/, test output)
	rm -rf .churnguard test-output .pytest_cache .mypy_cache .ruff_cache
