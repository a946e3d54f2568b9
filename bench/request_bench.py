"""One request's cost in-process: this checkout's predictor against another commit's, on the same model.

    .venv/bin/python bench/request_bench.py                        # instructions, against QUALITY_BEFORE_COMMIT
    .venv/bin/python bench/request_bench.py --rows 1000 --requests 200
    .venv/bin/python bench/request_bench.py --measure cpu --rounds 6

wrk's req/s move by ±5% from one round to the next on a shared machine, and so does a process's CPU time (cache and
memory bandwidth are shared with the host's other guests): more than a cost of a few microseconds a request. So the
default measure is the instructions a request executes, counted by valgrind's callgrind (Debian `valgrind`), which
no neighbour changes: the same code on the same input gives the same count to within 0.5%.

Setup as serve_bench: an MLflow server with a champion trained by the pipeline. For each tree (rounds alternate the
order), a fresh process loads the champion, wraps it in the hot routes (predictor/hot.py: KServe's Model.__call__,
decoding, scoring, metrics, the response's JSON), warms up on 500 requests of real rows sent as ASGI calls (no
sockets, no load generator), then runs --requests more: under callgrind, with counting switched on for those only
(`callgrind_control -i on`); with --measure cpu, pinned to core 0, timed five times by its CPU time. Tracing is off
(its exporter is another process). Prints each round, then the medians and the ratio of the other tree's cost to
this one's: its throughput relative to the other's, if the request path were all (>= 0.95: at most 5% slower).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import serve_bench as sb

CHILD = r"""
import asyncio, csv, json, sys, time
from predictor.hot import HotRoutes
from predictor.model import ChurnModel
from predictor.settings import PredictorSettings

n, rows_per_request, measure = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = ChurnModel(PredictorSettings())
model.load()
hot = HotRoutes(None, model)
types = {f.name: float if f.type == "float" else int for f in model.served.spec.features}
with open("data/raw/churn.csv") as f:
    rows = [{k: types[k](r[k]) for k in types} for r in list(csv.DictReader(f))[:1000]]
bodies = [
    json.dumps({"instances": [rows[(i + j) % len(rows)] for j in range(rows_per_request)]}).encode()
    for i in range(200)
]
scope = {"type": "http", "method": "POST", "path": hot.v1, "headers": [(b"content-type", b"application/json")]}

async def send(message):
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise SystemExit(f"status {message['status']}")

async def run(count):
    for i in range(count):
        body = bodies[i % len(bodies)]
        async def receive(body=body):
            return {"type": "http.request", "body": body, "more_body": False}
        await hot(scope, receive, send)

loop = asyncio.new_event_loop()
loop.run_until_complete(run(500))
if measure == "instructions":  # the parent switches callgrind's counting on and off around the measured requests
    print("READY", flush=True)
    sys.stdin.readline()
    loop.run_until_complete(run(n))
    print("DONE", flush=True)
    sys.stdin.readline()
else:
    times = []
    for _ in range(5):
        start = time.process_time()
        loop.run_until_complete(run(n))
        times.append((time.process_time() - start) / n * 1e6)
    print(" ".join(f"{t:.3f}" for t in sorted(times)), flush=True)
"""


def instructions(tree: Path, env: dict[str, str], requests: int, rows: int, out: Path) -> float:
    """Instructions a request, counted by callgrind over `requests` requests after the warm-up."""
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd += [sys.executable, "-c", CHILD, str(requests), str(rows), "instructions"]
    with (out.parent / f"{out.name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert proc.stdin is not None and proc.stdout is not None
        if proc.stdout.readline().strip() != b"READY":
            raise SystemExit(f"{tree}: the child did not start; see {log.name}")
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != b"DONE":
            raise SystemExit(f"{tree}: the child failed; see {log.name}")
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        proc.communicate(b"\n", timeout=120)
    totals = re.search(r"^totals: (\d+)", out.read_text(), re.M)
    if totals is None:
        raise SystemExit(f"no totals in {out}")
    return int(totals.group(1)) / requests


def cpu_us(tree: Path, env: dict[str, str], requests: int, rows: int) -> float:
    """The best of five CPU times a request, in microseconds, pinned to the server core."""
    cmd = ["taskset", "-c", sb.SERVER_CORE, sys.executable, "-c", CHILD, str(requests), str(rows), "cpu"]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return float(out.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default=sb.QUALITY_BEFORE_COMMIT, help="the other commit (default %(default)s)")
    ap.add_argument("--measure", choices=("instructions", "cpu"), default="instructions")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per run (default 2000)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(sb.LOAD_CORE)})
    unit = "instructions" if args.measure == "instructions" else "us of CPU"
    with tempfile.TemporaryDirectory(prefix="churnguard-request-bench-") as tmp:
        work = Path(tmp)
        trees = {"this checkout": sb.ROOT, args.against: sb.worktree(args.against, work)}
        print(f"load average at start: {os.getloadavg()}; code fingerprint: {sb.code_fingerprint()}")
        cost: dict[str, list[float]] = {name: [] for name in trees}
        try:
            with sb.mlflow_with_champion(work) as (tracking, _):
                env = {**os.environ, **sb.THREADS_ENV, "MLFLOW_TRACKING_URI": tracking, "CHURN_TRACING": "false"}
                for rnd in range(args.rounds):
                    order = list(trees.items())
                    for name, tree in order if rnd % 2 == 0 else order[::-1]:
                        tree_env = {**env, "PYTHONPATH": str(tree)}
                        if args.measure == "instructions":
                            out = work / f"callgrind-{rnd}-{name.replace(' ', '-')}.out"
                            value = instructions(tree, tree_env, args.requests, args.rows, out)
                        else:
                            value = cpu_us(tree, tree_env, args.requests, args.rows)
                        cost[name].append(value)
                        print(f"round {rnd + 1} {name}: {value:,.1f} {unit} a request", flush=True)
        finally:
            tree = str(trees[args.against])
            subprocess.run(["git", "-C", str(sb.ROOT), "worktree", "remove", "--force", tree], check=False)
    mine, other = (sb.med(cost[n]) for n in trees)
    ratios = [b / a for a, b in zip(cost["this checkout"], cost[args.against], strict=True)]
    print(f"\n{args.rows}-row request, {unit} a request (median over {args.rounds} rounds):")
    for name, value in ((n, sb.med(cost[n])) for n in trees):
        print(f"- {name}: {value:,.1f} [{', '.join(f'{v:,.1f}' for v in cost[name])}]")
    print(
        f"- {args.against} / this checkout: {other / mine:.4f}x [{', '.join(f'{r:.4f}' for r in ratios)}]; "
        f"this checkout costs {mine - other:+,.1f} {unit} a request ({(mine - other) / other:+.2%})"
    )


if __name__ == "__main__":
    main()
