# ChurnGuard: `make help` lists the targets. Every target uses the project's own virtualenv (.venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
# uv installs without bytecode (compiling all ~33,000 files of the venv took 1 min 40 s here, pip did it at every
# install); Python writes the bytecode of what it imports at first use, unless PYTHONDONTWRITEBYTECODE (set on some
# machines) stops it, and then every process compiles its imports again (MLflow's server twice as slow to start).
unexport PYTHONDONTWRITEBYTECODE
.DEFAULT_GOAL := help

.PHONY: help install lock chart-docs images test-containers system-deps up train serve-ui test test-unit test-integration test-chart lint format typecheck bench clean

# Local stack ports (all on 127.0.0.1) and the folder that keeps its state: MLflow's store, logs, inference log.
MLFLOW_PORT ?= 5000
PREDICTOR_PORT ?= 8080
UI_PORT ?= 8081
PROMETHEUS_PORT ?= 9090
PREDICTOR_URL ?= http://127.0.0.1:$(PREDICTOR_PORT)
STACK ?= .churnguard/stack
override STACK := $(abspath $(STACK))
# How often the local predictor checks the champion alias: a new champion (or the first one) is served within this.
CHURN_RELOAD_INTERVAL ?= 2
UV_VERSION = $(shell sed -n 's/^uv==//p' requirements.lock)
NGINX = $(firstword $(shell command -v nginx) $(wildcard /usr/sbin/nginx))

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The venv, by uv at the lock's versions (the same pins as pip -c requirements.lock in CI and the images). uv is the
# venv's own once it exists (it is in the lock); a first install fetches that version with the system Python's pip
# into a temporary folder. pip's index settings (pip.conf, PIP_* variables) are handed to uv, which reads neither.
define INSTALL_SH
set -euo pipefail
: "${PYTHON:?}" "${VENV:?}" "${UV_VERSION:?}"
log=$VENV/install.log
mkdir -p "$VENV"
: >"$log"
echo "installing $VENV from requirements.lock with uv $UV_VERSION (log: $log)"
fail() {
  echo "install failed: $1; the end of $log:" >&2
  tail -n 15 "$log" | sed 's/^/  /' >&2
  exit 1
}
uv=$VENV/bin/uv
if ! [ -x "$uv" ]; then
  boot=$(mktemp -d)
  trap 'rm -rf "$boot"' EXIT
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
  if "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m pip install --target "$boot" "uv==$UV_VERSION" >>"$log" 2>&1 || fail "$PYTHON -m pip could not install uv"
    uv=$boot/bin/uv
  else
    { "$PYTHON" -m venv "$boot/venv" && "$boot/venv/bin/pip" install "uv==$UV_VERSION"; } >>"$log" 2>&1 \
      || fail "$PYTHON has neither pip nor venv (Debian: apt-get install python3-venv)"
    uv=$boot/venv/bin/uv
  fi
fi
conf=$("$PYTHON" -m pip config list 2>/dev/null || true)
pip_option() {  # the value pip would use: its environment variable, then the [install] section, then [global]
  local scope line
  for scope in ":env:" "install" "global"; do
    if line=$(grep -m1 "^$scope\.$1=" <<<"$conf"); then
      line=${line#*=\'}
      line=${line%\'}
      printf '%s' "${line//\\n/ }"
      return
    fi
  done
}
value=$(pip_option index-url)
if [ -n "$value" ] && [ -z "${UV_INDEX_URL:-}${UV_DEFAULT_INDEX:-}" ]; then export UV_INDEX_URL=$value; fi
value=$(pip_option extra-index-url)
if [ -n "$value" ] && [ -z "${UV_EXTRA_INDEX_URL:-}${UV_INDEX:-}" ]; then
  # pip takes the best match across all indexes; uv's default stops at the first index that has the name.
  export UV_EXTRA_INDEX_URL=$value UV_INDEX_STRATEGY=${UV_INDEX_STRATEGY:-unsafe-best-match}
fi
value=$(pip_option find-links)
if [ -n "$value" ] && [ -z "${UV_FIND_LINKS:-}" ]; then export UV_FIND_LINKS=${value// /,}; fi
value=$(pip_option cert)
if [ -n "$value" ] && [ -z "${SSL_CERT_FILE:-}" ]; then export SSL_CERT_FILE=$value; fi
export UV_PYTHON_DOWNLOADS=never
python=$("$PYTHON" -c 'import sys; print(sys.executable)') || fail "no $PYTHON"
"$uv" venv --allow-existing --seed --python "$python" "$VENV" >>"$log" 2>&1 || fail "uv could not create $VENV"
"$uv" pip install --python "$VENV/bin/python" -c requirements.lock -e '.[train,serve,dev]' >>"$log" 2>&1 \
  || fail "uv pip install did not finish"
touch "$VENV/.installed"
endef

$(VENV)/.installed: export INSTALL_SH := $(value INSTALL_SH)
$(VENV)/.installed: pyproject.toml requirements.lock
	@PYTHON='$(PYTHON)' VENV='$(VENV)' UV_VERSION='$(UV_VERSION)' exec bash -c "$$INSTALL_SH" install

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

# ui/nginx.conf for a local nginx: this checkout's ui/ as the root, a loopback port, the predictor as the upstream, and
# its pid and temp files in the stack folder (the chart's /tmp paths would be shared by every local nginx).
NGINX_CONF = sed -e 's\# /tmp/\# $(STACK)/nginx/\#' -e 's\#root /usr/share/nginx/html;\#root $(CURDIR)/ui;\#' \
  -e 's\#listen 8080;\#listen 127.0.0.1:$(UI_PORT);\#' -e 's\#$${PREDICTOR_UPSTREAM}\#$(PREDICTOR_URL)\#' \
  -e 's\#$${NGINX_RESOLVERS}\#127.0.0.1\#' ui/nginx.conf > $(STACK)/nginx/nginx.conf

# The local stack (`make up`). Every server runs in its own session, so the terminal's Ctrl-C reaches only make and
# this script, which then stops each server's whole process group (MLflow's uvicorn worker, the predictor's trace
# exporter, nginx's workers) with SIGTERM, and SIGKILL after 4 s. A server that fails to start stops all of them.
define UP_SH
set -uo pipefail
unset UP_SH INSTALL_SH
logs=$STACK/logs
names=()
pids=()

http_status() {  # HTTP status of GET 127.0.0.1:$1$2, or nothing when nobody answers
  local line=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
  IFS= read -r -t 10 line <&3 || true
  exec 3<&-
  line=${line#HTTP/* }
  printf '%s' "${line%% *}"
}

start() {  # name, command...: the command in its own session, output to logs/<name>.log
  local name=$1
  shift
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  names+=("$name")
  pids+=("$!")
}

# A server's process, or (once it has called setsid, and after it exited) what is left of its process group.
alive() { kill -0 "$1" 2>/dev/null || kill -0 -- "-$1" 2>/dev/null; }

signal_all() {  # SIGTERM or SIGKILL to every server started
  local i
  for i in "${pids[@]}"; do kill "-$1" -- "-$i" "$i" 2>/dev/null; done; }

stop_all() {
  local i deadline=$((${EPOCHREALTIME/./} + 4000000))
  signal_all TERM
  for i in "${pids[@]}"; do
    while alive "$i" && ((${EPOCHREALTIME/./} < deadline)); do sleep 0.1; done
  done
  signal_all KILL
  wait 2>/dev/null
  pids=()
}

fail() {  # message, log name: say what failed, show the end of its log, stop everything started so far
  echo "$1: see $logs/$2.log" >&2
  if [ -s "$logs/$2.log" ]; then tail -n 12 "$logs/$2.log" | sed 's/^/  /' >&2; fi
  stop_all
  exit 1
}

wait_ready() {  # name, port, path, seconds: until GET answers 200; fail when its process ends or time runs out
  local name=$1 port=$2 path=$3 until=$((SECONDS + $4)) i pid=""
  for i in "${!names[@]}"; do if [ "${names[$i]}" = "$1" ]; then pid=${pids[$i]}; fi; done
  while [ "$(http_status "$port" "$path")" != 200 ]; do
    if [ -n "$pid" ] && ! alive "$pid"; then fail "$name stopped during start-up" "$name"; fi
    if ((SECONDS >= until)); then fail "$name did not answer http://127.0.0.1:$port$path within $4 s" "$name"; fi
    sleep 0.25
  done
}

trap 'stop_all; echo "stopped"; exit 0' INT TERM
trap 'stop_all' EXIT

have_nginx=$([ -n "$NGINX_BIN" ] && echo 1)
have_prometheus=$(command -v prometheus >/dev/null && echo 1)
ports=("MLFLOW_PORT $MLFLOW_PORT" "PREDICTOR_PORT $PREDICTOR_PORT")
if [ -n "$have_nginx" ]; then ports+=("UI_PORT $UI_PORT"); fi
if [ -n "$have_prometheus" ]; then ports+=("PROMETHEUS_PORT $PROMETHEUS_PORT"); fi
for p in "${ports[@]}"; do
  if { exec 3<>"/dev/tcp/127.0.0.1/${p#* }"; } 2>/dev/null; then
    exec 3<&-
    echo "port ${p#* } (${p% *}) is in use: stop what listens there, or choose another, e.g. make up ${p% *}=$((${p#* } + 100))" >&2
    exit 1
  fi
done

mkdir -p "$logs"
fresh_store=$([ -s "$STACK/mlflow.db" ] || echo 1)
started=$SECONDS
what="MLflow, predictor"
if [ -n "$have_nginx" ]; then what+=", UI"; fi
if [ -n "$have_prometheus" ]; then what+=", Prometheus"; fi
echo "starting $what on 127.0.0.1 (state and logs: $STACK)"
export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
# Known deprecation warnings of the libraries, out of the logs (each filter: the start of the message).
start mlflow env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
  PYTHONWARNINGS="ignore:starlette.middleware.wsgi is deprecated" \
  "$BIN/mlflow" server --backend-store-uri "sqlite:///$STACK/mlflow.db" --artifacts-destination "$STACK/artifacts" \
  --serve-artifacts --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
# The predictor starts with MLflow and serves the champion as soon as its loader finds it. Its prediction ids are
# signed with a key made once per stack, so feedback for them still counts after a restart.
[ -s "$STACK/feedback.key" ] || (umask 077 && "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(36))" >"$STACK/feedback.key")
start predictor env CHURN_INFERENCE_LOG_DIR="$STACK/inference-log" CHURN_MLFLOW_UI_URL="$MLFLOW_TRACKING_URI" \
  CHURN_FEEDBACK_KEY_FILE="$STACK/feedback.key" \
  CHURN_RELOAD_INTERVAL="$CHURN_RELOAD_INTERVAL" PYTHONWARNINGS="ignore:ORJSONResponse is deprecated" \
  "$BIN/python" -m predictor --http_port "$PREDICTOR_PORT"
if [ -n "$have_nginx" ]; then
  start nginx "$NGINX_BIN" -e stderr -p "$STACK/nginx" -c "$STACK/nginx/nginx.conf" -g 'daemon off;'
fi
if [ -n "$have_prometheus" ]; then
  start prometheus "$BIN/python" -m monitoring.prometheus --target "127.0.0.1:$PREDICTOR_PORT" \
    --port "$PROMETHEUS_PORT" --data-dir "$STACK/prometheus"
fi

wait_ready mlflow "$MLFLOW_PORT" /health 300
mlflow_up=$SECONDS
model=$("$BIN/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' data/churn.spec.yaml)
# One registry request instead of `python -m training champion` (the same question; its imports take ~15 s).
if [ -n "$fresh_store" ] || [ "$(http_status "$MLFLOW_PORT" \
  "/api/2.0/mlflow/registered-models/alias?name=$model&alias=champion")" != 200 ]; then
  echo "training the first champion: python -m training run (log: $logs/training.log)"
  CHURN_HOME="$STACK/training" "$BIN/python" -m training run >"$logs/training.log" 2>&1 </dev/null \
    || fail "training did not register a champion (exit $?)" training
fi
trained=$SECONDS

wait_ready predictor "$PREDICTOR_PORT" /v2/health/ready 180
if [ -n "$have_nginx" ]; then wait_ready nginx "$UI_PORT" /healthz 60; fi
if [ -n "$have_prometheus" ]; then wait_ready prometheus "$PROMETHEUS_PORT" /-/ready 120; fi
now=$(date +%s)
echo "ready in $((now - UP_T0)) s (install $((now - UP_T0 - SECONDS)) s, MLflow $((mlflow_up - started)) s," \
  "training $((trained - mlflow_up)) s, serving $((SECONDS - trained)) s)"
if [ -n "$have_nginx" ]; then
  echo "  UI:          http://127.0.0.1:$UI_PORT/"
else
  echo "  UI:          not served: nginx is not installed (make system-deps as root, or sudo make system-deps)"
fi
echo "  Predictor:   http://127.0.0.1:$PREDICTOR_PORT/v1/models/$model:predict  (metrics: /metrics)"
echo "  MLflow:      $MLFLOW_TRACKING_URI"
if [ -n "$have_prometheus" ]; then
  echo "  Prometheus:  http://127.0.0.1:$PROMETHEUS_PORT  (alerts: /alerts)"
else
  echo "  Prometheus:  not running: prometheus is not installed (make system-deps as root, or sudo make system-deps)"
fi
echo "  Logs:        $logs  (inference log: $STACK/inference-log)"
echo "Ctrl-C stops everything."
while kill -0 "$PPID" 2>/dev/null; do
  for i in "${!pids[@]}"; do
    if ! alive "${pids[$i]}"; then fail "${names[$i]} stopped" "${names[$i]}"; fi
  done
  sleep 1
done
endef

up: export UP_SH := $(value UP_SH)
up: UP_T0 := $(shell date +%s)
up: install ## Run the local stack on 127.0.0.1 (MLflow, first training, predictor, UI, Prometheus) until Ctrl-C
	@mkdir -p $(STACK)/nginx
	@$(if $(NGINX),$(NGINX_CONF))
	@STACK='$(STACK)' BIN='$(CURDIR)/$(BIN)' NGINX_BIN='$(NGINX)' UP_T0='$(UP_T0)' MLFLOW_PORT='$(MLFLOW_PORT)' \
	  PREDICTOR_PORT='$(PREDICTOR_PORT)' UI_PORT='$(UI_PORT)' PROMETHEUS_PORT='$(PROMETHEUS_PORT)' \
	  CHURN_RELOAD_INTERVAL='$(CHURN_RELOAD_INTERVAL)' exec bash -c "$$UP_SH" up

serve-ui: ## Serve ui/ through Debian nginx on UI_PORT (8081) in front of the predictor at PREDICTOR_URL
	@mkdir -p $(STACK)/nginx
	@$(NGINX_CONF)
	@echo "UI:          http://127.0.0.1:$(UI_PORT)/  (predictor $(PREDICTOR_URL))"
	@PATH="$$PATH:/usr/sbin" nginx -e stderr -p $(STACK)/nginx -c $(STACK)/nginx/nginx.conf -g 'daemon off;'

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
