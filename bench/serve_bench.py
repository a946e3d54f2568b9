"""Serving benchmark (issue 3): ChurnGuard's predictor vs a reference-like FastAPI server, same model, same load.

    .venv/bin/python bench/serve_bench.py                          # 3 rounds, default variants, 8 s per load
    .venv/bin/python bench/serve_bench.py --rounds 1 --duration 3  # quick smoke run
    .venv/bin/python bench/serve_bench.py --variants baseline,predictor,predictor-lean

What it does, all on 127.0.0.1:
  1. starts an MLflow server (sqlite + served artifacts, pinned to the load core) and trains the champion into
     it with `python -m training run` (the real pipeline);
  2. per round, per variant (order rotated each round): starts the server pinned to core 0
     (`taskset -c 0`), times start -> ready (predictor: GET /v2/health/ready == 200, MLflow already up),
     checks one answer, warms up, then drives it with Debian `wrk` pinned to core 1 (closed loop, keep-alive,
     a Lua script cycling through real rows as POST bodies): 1-row requests at concurrency 1 and 16,
     1,000-row batches at concurrency 2; reads VmRSS (process and its children) after the load; stops it;
  3. after --warmup-rounds unrecorded rounds, prints medians over rounds, same-round ratios against the baseline
     with the same worker count, and a PASS/FAIL table for the issue's targets.

Variants (name: what runs):
  baseline            bench/baseline_server.py, 1 uvicorn worker (FastAPI + pydantic + 1-row DataFrame +
                      predict then predict_proba; uvicorn defaults, access log on)
  predictor           `python -m predictor` as shipped (no per-request log lines; MLflow tracing of 10% of requests,
                      at most 20 traces per second)
  predictor-quiet     + `--enable_latency_logging false --log_config_file <uvicorn.access and kserve.trace at
                      WARNING>` (deployment options; no per-request log lines)
  predictor-lean      predictor-quiet + CHURN_TRACING=false
  predictor-notrace   the predictor as shipped with CHURN_TRACING=false (the tracing-cost comparison, issue 14)
  predictor-before    the predictor at BEFORE_COMMIT (before issue 14's work), from a git worktree, same venv and model
  predictor-before-quality, predictor-before-quality-notrace: the predictor at QUALITY_BEFORE_COMMIT (before issue
                      16's live quality), tracing as shipped and off
  floor               bench/floor_server.py: a bare ASGI app under uvicorn answering a fixed body (the HTTP floor)
  kserve-stock        bench/kserve_stock.py: a KServe custom predictor as KServe's docs write one (DataFrame ->
                      predict_proba), KServe's defaults
  baseline-w2, predictor-w2, predictor-lean-w2: the same with 2 worker processes (`--workers 2`)

Issue 14's targets are checked on same-round ratios: tracing on >= 0.95x off (predictor / predictor-notrace) at
1-row c16; predictor >= 0.25x floor at 1-row c16 and its c16 p99 <= 0.5x predictor-before's; 1,000-row rows/s >= 3x
kserve-stock; start -> ready <= 0.5x the baseline's; idle RSS (after ready, before any load) <= 200 MB.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import free_port, mlflow_server_cmd, stop, wait_http  # noqa: E402

PYTHON = sys.executable
SERVER_CORE, LOAD_CORE = "0", "1"
FEATURES = ["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets"]
QUIET_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"uvicorn.access": {"level": "WARNING"}, "kserve.trace": {"level": "WARNING"}},
}
BEFORE_COMMIT = "6e27dbb"
"""The last commit before issue 14's work (the hot routes, the tracing exporter, the start-up imports)."""
QUALITY_BEFORE_COMMIT = "fef8b39"
"""The last commit before issue 16's live quality (prediction ids, quality counters, the shadow)."""
THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

LUA = r"""
local bodies = {%(bodies)s}
local n = #bodies
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% n + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    connections: int


SCENARIOS = [Scenario("1-row c1", 1, 1), Scenario("1-row c16", 1, 16), Scenario("1000-row c2", 1000, 2)]


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "baseline" | "predictor" | "floor" | "kserve"
    workers: int = 1
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    checkout: str | None = None
    """Run the predictor from a worktree of this commit instead of this checkout."""


def variants(quiet_config: Path) -> dict[str, Variant]:
    quiet = ("--enable_latency_logging", "false", "--log_config_file", str(quiet_config))
    lean_env = (("CHURN_TRACING", "false"),)
    out = {
        "baseline": Variant("baseline", "baseline"),
        "predictor": Variant("predictor", "predictor"),
        "predictor-quiet": Variant("predictor-quiet", "predictor", args=quiet),
        "predictor-lean": Variant("predictor-lean", "predictor", args=quiet, env=lean_env),
        "predictor-notrace": Variant("predictor-notrace", "predictor", env=lean_env),
    }
    for v in list(out.values()):
        out[f"{v.name}-w2"] = Variant(f"{v.name}-w2", v.kind, 2, v.args, v.env)
    out["predictor-before"] = Variant("predictor-before", "predictor", checkout=BEFORE_COMMIT)
    out["predictor-before-quality"] = Variant("predictor-before-quality", "predictor", checkout=QUALITY_BEFORE_COMMIT)
    out["predictor-before-quality-notrace"] = Variant(
        "predictor-before-quality-notrace", "predictor", env=lean_env, checkout=QUALITY_BEFORE_COMMIT
    )
    out["floor"] = Variant("floor", "floor")
    out["kserve-stock"] = Variant("kserve-stock", "kserve")
    return out


@dataclass
class Result:
    variant: str
    round: int
    ready_s: float
    rss_mb: float
    rss_total_mb: float
    processes: int
    rss_idle_mb: float = float("nan")
    """VmRSS of the server process once ready, before any request but the answer check (with workers: the largest)."""
    live_s: float = float("nan")
    """Start to /v2/health/live 200 (HTTP server up, model not necessarily loaded)."""
    loads: dict[str, dict[str, float]] = field(default_factory=dict)


# -- processes ---------------------------------------------------------------------------------------------------
@contextmanager
def started(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        yield proc
    finally:
        stop(proc, timeout=15)
        for child in descendants(proc.pid):  # workers orphaned by a forced stop
            with suppress(ProcessLookupError):
                os.kill(child, 9)


def worktree(commit: str, work: Path) -> Path:
    """A detached git worktree of `commit` under `work` (made once per run, removed at the end of the run)."""
    where = work / f"worktree-{commit}"
    if not where.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit], check=True, capture_output=True
        )
    return where


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float, since: float | None = None) -> float:
    """Seconds from `since` (default: now) until `url` answers 200, polling every 50 ms."""
    start = time.monotonic() if since is None else since
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready within {timeout:.0f} s")


# -- load ----------------------------------------------------------------------------------------------------------
def load_rows(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [
            {k: (float(r[k]) if k == "monthly_charges" else int(r[k])) for k in FEATURES} for r in csv.DictReader(f)
        ]


def body(kind: str, rows: list[dict[str, Any]]) -> str:
    if kind == "baseline":
        return json.dumps(rows[0] if len(rows) == 1 else rows)
    return json.dumps({"instances": rows})  # the V1 protocol (the floor reads and ignores it)


def path(kind: str, n_rows: int) -> str:
    if kind == "baseline":
        return "/predict" if n_rows == 1 else "/predict/batch"
    return "/v1/models/churnguard:predict"


def lua_script(kind: str, scenario: Scenario, rows: list[dict[str, Any]], out: Path) -> Path:
    n_bodies = 200 if scenario.rows == 1 else 8
    bodies = [body(kind, rows[(i * scenario.rows) % len(rows) :][: scenario.rows]) for i in range(n_bodies)]
    bodies = [b for b in bodies if b]
    script = out / f"{kind}-{scenario.rows}.lua"
    script.write_text(LUA % {"bodies": ",\n".join(f"[==[{b}]==]" for b in bodies), "path": path(kind, scenario.rows)})
    return script


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    cmd = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
    ]
    proc = subprocess.run(
        [*cmd, "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    secs = raw["duration_us"] / 1e6
    return {
        "req_s": raw["requests"] / secs,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["non2xx"] + raw["socket_errors"],
        "requests": raw["requests"],
    }


def check_answer(kind: str, base: str, row: dict[str, Any]) -> float:
    r = requests.post(base + path(kind, 1), data=body(kind, [row]), headers={"Content-Type": "application/json"})
    r.raise_for_status()
    out = r.json()
    if kind == "baseline":
        return float(out["churn_probability"])
    first = out["predictions"][0]
    return float(first if kind == "kserve" else first["churn_probability"])


def server_cmd(v: Variant, port: int) -> tuple[list[str], str]:
    """The command that starts variant `v` on `port`, and its readiness URL."""
    if v.kind == "predictor":
        cmd = [PYTHON, "-m", "predictor", "--http_port", str(port), *v.args]
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
    elif v.kind == "kserve":
        cmd = [PYTHON, str(ROOT / "bench" / "kserve_stock.py"), "--http_port", str(port), *v.args]
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
    elif v.kind == "floor":
        cmd = [PYTHON, str(ROOT / "bench" / "floor_server.py"), "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/"
    else:
        cmd = [PYTHON, str(ROOT / "bench" / "baseline_server.py"), "--port", str(port), *v.args]
        ready = f"http://127.0.0.1:{port}/health"
    if v.workers > 1:
        cmd += ["--workers", str(v.workers)]
    return cmd, ready


@contextmanager
def mlflow_with_champion(work: Path) -> Iterator[tuple[str, int]]:
    """An MLflow server (pinned to the load core) holding a champion trained by `python -m training run`."""
    home, port = work / "mlflow", free_port()
    tracking = f"http://127.0.0.1:{port}"
    mlflow_cmd = ["taskset", "-c", LOAD_CORE, *mlflow_server_cmd(home, port)]
    with started(mlflow_cmd, {**os.environ, **THREADS_ENV}, work / "mlflow.log") as proc:
        wait_http(f"{tracking}/health", timeout=120, proc=proc)
        t = time.monotonic()
        env = {**os.environ, **THREADS_ENV, "MLFLOW_TRACKING_URI": tracking, "CHURN_HOME": str(work / "home")}
        trained = subprocess.run(
            [PYTHON, "-m", "training", "run"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if trained.returncode != 0:
            raise SystemExit(f"training failed ({trained.returncode}):\n{trained.stderr[-3000:]}")
        print(f"champion trained and registered in {time.monotonic() - t:.1f} s", flush=True)
        yield tracking, proc.pid


# -- one server, one round ----------------------------------------------------------------------------------------
def measure(
    v: Variant, rnd: int, tracking: str, rows: list[dict[str, Any]], work: Path, seconds: float
) -> Result | str:
    port = free_port()
    env = {**os.environ, **THREADS_ENV, "MLFLOW_TRACKING_URI": tracking, **dict(v.env)}
    cmd, ready = server_cmd(v, port)
    log = work / f"{v.name}-r{rnd}.log"
    base = f"http://127.0.0.1:{port}"
    live = f"http://127.0.0.1:{port}/v2/health/live" if v.kind in ("predictor", "kserve") else None
    cwd = worktree(v.checkout, work) if v.checkout else ROOT
    started_at = time.monotonic()
    with started(["taskset", "-c", SERVER_CORE, *cmd], env, log, cwd=cwd) as proc:
        try:
            live_s = wait_ready(live, proc, timeout=90, since=started_at) if live else float("nan")
            ready_s = wait_ready(ready, proc, timeout=90, since=started_at)
        except (RuntimeError, TimeoutError) as exc:
            return f"{exc}; log tail: {log.read_text()[-800:]}"
        processes = 1 + len([p for p in descendants(proc.pid) if "python" in _cmdline(p)])
        if v.workers > 1 and processes < v.workers + 1:
            return (
                f"--workers {v.workers} had no effect: 1 server process, no worker processes "
                f"(ready in {ready_s:.1f} s; log: {log})"
            )
        workers = descendants(proc.pid) if v.workers > 1 else [proc.pid]
        rss_idle = max(rss_mb(p) for p in workers)
        if v.kind != "floor":
            check_answer(v.kind, base, rows[0])
        # Steady state: work a server defers past ready (imports on a background thread) is done before the load.
        settle([proc.pid, *descendants(proc.pid)], limit=60)
        res = Result(v.name, rnd, ready_s, 0.0, 0.0, processes, live_s=live_s, rss_idle_mb=rss_idle)
        for sc in SCENARIOS:
            script = lua_script(v.kind, sc, rows, work)
            wrk(base, script, sc.connections, min(2.0, seconds))  # warm-up, not recorded
            res.loads[sc.name] = wrk(base, script, sc.connections, seconds)
            res.loads[sc.name]["rows_s"] = res.loads[sc.name]["req_s"] * sc.rows
        res.rss_mb = rss_mb(proc.pid)
        res.rss_total_mb = res.rss_mb + sum(rss_mb(p) for p in descendants(proc.pid))
        if v.workers > 1:  # the workers carry the model: report the largest one as "the process"
            res.rss_mb = max(rss_mb(p) for p in descendants(proc.pid))
        return res


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def settle(pids: list[int], *, limit: float, idle_share: float = 0.1) -> float:
    """Wait (at most `limit` s) until `pids` use under `idle_share` of a core over 2 s; return the wait."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(pids)
        time.sleep(2)
        if cpu_seconds(pids) - before < 2 * idle_share:
            break
    return time.monotonic() - start - 2


def code_fingerprint() -> str:
    """Hash of the served code: other engineers edit this checkout while benchmarks run."""
    digest = hashlib.sha256()
    for f in sorted(
        [*(ROOT / "predictor").glob("*.py"), *(ROOT / "training").glob("*.py"), *(ROOT / "contract").glob("*.py")]
    ):
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# -- report --------------------------------------------------------------------------------------------------------
def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def baseline_of(name: str) -> str:
    return "baseline-w2" if name.endswith("-w2") else "baseline"


def report(results: list[Result], failures: dict[str, list[str]], rounds: int) -> None:
    names = list(dict.fromkeys(r.variant for r in results))
    by = {(r.variant, r.round): r for r in results}
    print("\n## Medians over rounds (server on core 0, wrk on core 1)\n")
    print("| variant | scenario | req/s | rows/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        rs = [r for r in results if r.variant == n]
        for sc in SCENARIOS:
            loads = [r.loads[sc.name] for r in rs]
            print(
                f"| {n} | {sc.name} | {med([x['req_s'] for x in loads]):,.0f} | "
                f"{med([x['rows_s'] for x in loads]):,.0f} | {med([x['p50_ms'] for x in loads]):.2f} | "
                f"{med([x['p99_ms'] for x in loads]):.2f} | {sum(x['errors'] for x in loads):.0f} |"
            )
    print(
        "\n| variant | live s | ready s (median) | idle RSS MB (median) | RSS after load MB (median) "
        "| RSS incl. children MB | processes |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in names:
        rs = [r for r in results if r.variant == n]
        print(
            f"| {n} | {med([r.live_s for r in rs]):.2f} | {med([r.ready_s for r in rs]):.2f} | "
            f"{med([r.rss_idle_mb for r in rs]):.0f} | {med([r.rss_mb for r in rs]):.0f} | "
            f"{med([r.rss_total_mb for r in rs]):.0f} | {rs[0].processes} |"
        )

    def ratios(n: str, sc: str, key: str) -> list[float]:
        out = []
        for rnd in range(rounds):
            a, b = by.get((n, rnd)), by.get((baseline_of(n), rnd))
            if a and b and b.loads[sc][key] > 0:
                out.append(a.loads[sc][key] / b.loads[sc][key])
        return out

    print("\n## Same-round ratios against the baseline with the same workers (median [per round])\n")
    print("| variant | c16 req/s (>= 5x) | c16 p99 (<= 0.3x) | c1 p50 (<= 0.5x) | 1000-row rows/s (>= 2.5x) |")
    print("|---|---|---|---|---|")
    verdicts: list[tuple[str, str, str, bool]] = []
    for n in names:
        if n.startswith(("baseline", "predictor-before")) or n in ("floor", "kserve-stock", "predictor-notrace"):
            continue
        cells, checks = [], []
        for sc, key, target, better_high in (
            ("1-row c16", "req_s", 5.0, True),
            ("1-row c16", "p99_ms", 0.3, False),
            ("1-row c1", "p50_ms", 0.5, False),
            ("1000-row c2", "rows_s", 2.5, True),
        ):
            xs = ratios(n, sc, key)
            m = med(xs)
            ok = bool(xs) and (m >= target if better_high else m <= target)
            cells.append(f"{m:.2f}x [{', '.join(f'{x:.2f}' for x in xs)}]")
            checks.append((f"{sc} {key} {'>=' if better_high else '<='} {target}x baseline", f"{m:.2f}x", ok))
        print(f"| {n} | " + " | ".join(cells) + " |")
        rs = [r for r in results if r.variant == n]
        rss = med([r.rss_mb for r in rs])
        ready = max(r.ready_s for r in rs)
        checks.append(("RSS after load <= 300 MB", f"{rss:.0f} MB", rss <= 300))
        checks.append(("ready <= 5 s after start (worst round)", f"{ready:.2f} s", ready <= 5))
        verdicts += [(n, *c) for c in checks]

    print("\n## Targets\n")
    print("| variant | target | measured | result |")
    print("|---|---|---|---|")
    for n, target, value, ok in verdicts:
        print(f"| {n} | {target} | {value} | {'PASS' if ok else 'FAIL'} |")
    for n, whys in failures.items():
        first = whys[0].splitlines()[0][:160]
        print(f"| {n} | starts and serves ({len(whys)} of {rounds} rounds failed) | {first} | FAIL |")
    issue14(results, rounds)


def issue14(results: list[Result], rounds: int) -> None:
    """Issue 14's targets, each a same-round ratio (median over rounds, every round's value in brackets)."""
    by = {(r.variant, r.round): r for r in results}

    def value(r: Result, what: str) -> float:
        if what == "ready":
            return r.ready_s
        if what == "idle_rss":
            return r.rss_idle_mb
        scenario, key = what.split(":")
        return r.loads[scenario][key]

    checks = [  # (label, variant, reference variant or None for an absolute figure, what, target, higher is better)
        ("tracing on vs off, 1-row c16 req/s", "predictor", "predictor-notrace", "1-row c16:req_s", 0.95, True),
        ("share of the HTTP floor, 1-row c16 req/s", "predictor", "floor", "1-row c16:req_s", 0.25, True),
        ("1-row c16 p99 vs before issue 14", "predictor", "predictor-before", "1-row c16:p99_ms", 0.5, False),
        (
            "live quality on vs before it (issue 16), 1-row c16 req/s",
            "predictor",
            "predictor-before-quality",
            "1-row c16:req_s",
            0.95,
            True,
        ),
        (
            "live quality on vs before it, both with tracing off, 1-row c16 req/s",
            "predictor-notrace",
            "predictor-before-quality-notrace",
            "1-row c16:req_s",
            0.95,
            True,
        ),
        ("1,000-row rows/s vs stock KServe", "predictor", "kserve-stock", "1000-row c2:rows_s", 3.0, True),
        ("start -> ready vs the baseline", "predictor", "baseline", "ready", 0.5, False),
        ("idle RSS MB", "predictor", None, "idle_rss", 200.0, False),
    ]
    print("\n## Issue 14 and 16 targets (same round, same core)\n")
    print("| target | measured: median [per round] | result |")
    print("|---|---|---|")
    for label, n, ref, what, target, higher in checks:
        xs = []
        for rnd in range(rounds):
            a, b = by.get((n, rnd)), by.get((ref, rnd)) if ref else None
            if a is None or (ref and b is None):
                continue
            xs.append(value(a, what) / value(b, what) if b is not None else value(a, what))
        m = med(xs)
        ok = bool(xs) and (m >= target if higher else m <= target)
        unit = "x" if ref else ""
        goal = f"{'>=' if higher else '<='} {target:g}{unit}" + (f" {ref}" if ref else "")
        cells = ", ".join(f"{x:.2f}" for x in xs)
        print(f"| {label} ({n} {goal}) | {m:.2f}{unit} [{cells}] | {'PASS' if ok else 'FAIL' if xs else 'NOT RUN'} |")
    for n in (
        "floor",
        "kserve-stock",
        "predictor-before",
        "predictor-before-quality",
        "predictor-before-quality-notrace",
        "baseline",
        "predictor-notrace",
        "predictor",
    ):
        rs = [r for r in results if r.variant == n]
        if rs:
            loads = {sc.name: med([r.loads[sc.name]["req_s"] for r in rs]) for sc in SCENARIOS}
            print(
                f"- {n}: "
                + ", ".join(f"{k} {v:,.0f} req/s" for k, v in loads.items())
                + f"; ready {med([r.ready_s for r in rs]):.2f} s; idle RSS {med([r.rss_idle_mb for r in rs]):.0f} MB"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measured load")
    ap.add_argument(
        "--warmup-rounds",
        type=int,
        default=1,
        help="unrecorded rounds first (the first servers after training measured up to 13%% low, bench/README.md)",
    )
    ap.add_argument(
        "--variants",
        default="baseline,floor,kserve-stock,predictor-before,predictor,predictor-notrace",
        help="comma-separated; issue 3's set was baseline,predictor,predictor-quiet,predictor-lean,baseline-w2,"
        "predictor-w2,predictor-lean-w2",
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and scripts in this folder")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # this orchestrator stays off the server core

    with tempfile.TemporaryDirectory(prefix="churnguard-serve-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        quiet = work / "quiet-logging.json"
        quiet.write_text(json.dumps(QUIET_LOG_CONFIG))
        chosen = [variants(quiet)[n] for n in args.variants.split(",")]
        rows = load_rows(ROOT / "data" / "raw" / "churn.csv")
        print(f"load average at start: {os.getloadavg()}; variants: {[v.name for v in chosen]}")
        print(f"code fingerprint (predictor/ + training/) at start: {code_fingerprint()}")
        with mlflow_with_champion(work) as (tracking, mlflow_pid):
            results: list[Result] = []
            failures: dict[str, list[str]] = {}
            for rnd in range(-args.warmup_rounds, args.rounds):
                order = chosen[rnd % len(chosen) :] + chosen[: rnd % len(chosen)]
                for v in order:
                    # Traced variants leave MLflow ingesting a backlog of traces (its CPU is on the load core, and
                    # its registry answers slow down): start every variant with an idle MLflow server.
                    settled = settle([mlflow_pid, *descendants(mlflow_pid)], limit=60)
                    if settled > 1:
                        print(f"round {rnd + 1}: waited {settled:.0f} s for the MLflow server to go idle", flush=True)
                    before = code_fingerprint()
                    out = measure(v, rnd, tracking, rows, work, args.duration)
                    if code_fingerprint() != before:
                        print(f"round {rnd + 1} {v.name}: predictor/ or training/ changed during the measurement")
                    if isinstance(out, str):
                        failures.setdefault(v.name, []).append(f"round {rnd + 1}: {out}")
                        print(f"round {rnd + 1} {v.name}: FAILED: {out}")
                        continue
                    if rnd < 0:
                        print(f"warm-up round {v.name}: {out.loads['1-row c16']['req_s']:,.0f} req/s at 1-row c16")
                        continue
                    results.append(out)
                    summary = ", ".join(
                        f"{k} {x['req_s']:,.0f} req/s p50 {x['p50_ms']:.2f} p99 {x['p99_ms']:.2f}"
                        for k, x in out.loads.items()
                    )
                    print(
                        f"round {rnd + 1} {v.name}: live {out.live_s:.2f} s, ready {out.ready_s:.2f} s, "
                        f"RSS {out.rss_mb:.0f} MB; {summary}",
                        flush=True,
                    )
        print(f"load average at end: {os.getloadavg()}; code fingerprint at end: {code_fingerprint()}")
        for tree in work.glob("worktree-*"):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        report(results, failures, args.rounds)


if __name__ == "__main__":
    main()
