"""One request's CPU cost in-process: this checkout's predictor against another commit's, on the same model.

    .venv/bin/python bench/request_bench.py                       # against QUALITY_BEFORE_COMMIT, 4 rounds
    .venv/bin/python bench/request_bench.py --against 6e27dbb --rows 1000

wrk's req/s move by ±5% from one round to the next on a shared machine (bench/README.md), more than the cost of a
few microseconds a request. This measures the request path alone, with no sockets and no load generator: an MLflow
server with a champion trained by the pipeline (as serve_bench), then, alternating the two trees each round, a fresh
process pinned to core 0 that loads the champion, wraps it in the hot routes (predictor/hot.py: KServe's
Model.__call__, decoding, scoring, metrics, the response's JSON) and sends it N requests of real rows through ASGI
calls, five times, timing the process's CPU (time another process or the host takes is not counted). Tracing is
off (its exporter is another process). Prints per round the five, then the median over rounds of each round's best
and the ratio of the other tree's cost to this one's (>= 0.95: at most 5% slower).
"""

from __future__ import annotations

import argparse
import json
import os
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

n, rows_per_request = int(sys.argv[1]), int(sys.argv[2])
model = ChurnModel(PredictorSettings())
model.load()
hot = HotRoutes(None, model)
types = {f.name: float if f.type == "float" else int for f in model.served.spec.features}
with open("data/raw/churn.csv") as f:
    rows = [{k: types[k](r[k]) for k in types} for r in list(csv.DictReader(f))[:1000]]
bodies = [
    json.dumps({"instances": [rows[(i + j) % len(rows)] for j in range(rows_per_request)]}).encode()
    for i in range(0, 200)
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

asyncio.run(run(max(n // 5, 1)))  # warm-up
times = []
for _ in range(5):
    start = time.process_time()  # this process's CPU: not the time another process (or the host) took the core
    asyncio.run(run(n))
    times.append((time.process_time() - start) / n * 1e6)
print(json.dumps(sorted(times)))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default=sb.QUALITY_BEFORE_COMMIT, help="the other commit (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    ap.add_argument("--requests", type=int, default=5000, help="requests per timed run (default 5000)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(sb.LOAD_CORE)})
    with tempfile.TemporaryDirectory(prefix="churnguard-request-bench-") as tmp:
        work = Path(tmp)
        trees = {"this checkout": sb.ROOT, args.against: sb.worktree(args.against, work)}
        print(f"load average at start: {os.getloadavg()}; code fingerprint: {sb.code_fingerprint()}")
        best: dict[str, list[float]] = {name: [] for name in trees}
        try:
            with sb.mlflow_with_champion(work) as (tracking, _):
                env = {**os.environ, **sb.THREADS_ENV, "MLFLOW_TRACKING_URI": tracking, "CHURN_TRACING": "false"}
                for rnd in range(args.rounds):
                    order = list(trees.items())
                    for name, tree in order if rnd % 2 == 0 else order[::-1]:
                        cmd = ["taskset", "-c", sb.SERVER_CORE, sys.executable, "-c", CHILD]
                        out = subprocess.run(
                            [*cmd, str(args.requests), str(args.rows)],
                            cwd=tree,
                            env={**env, "PYTHONPATH": str(tree)},
                            capture_output=True,
                            text=True,
                            check=False,
                        )
                        if out.returncode != 0:
                            raise SystemExit(f"{name}: {out.stderr[-2000:]}")
                        times = json.loads(out.stdout.strip().splitlines()[-1])
                        best[name].append(times[0])
                        shown = ", ".join(f"{t:.1f}" for t in times)
                        print(f"round {rnd + 1} {name}: {shown} us of CPU a request", flush=True)
        finally:
            tree = str(trees[args.against])
            subprocess.run(["git", "-C", str(sb.ROOT), "worktree", "remove", "--force", tree], check=False)
        mine, other = (sb.med(best[n]) for n in trees)
        print(f"\n{args.rows}-row request, CPU a request: median over {args.rounds} rounds of each round's best of 5")
        print(f"- this checkout: {mine:.1f} us [{', '.join(f'{t:.1f}' for t in best['this checkout'])}]")
        print(f"- {args.against}: {other:.1f} us [{', '.join(f'{t:.1f}' for t in best[args.against])}]")
        ratios = [b / a for a, b in zip(best["this checkout"], best[args.against], strict=True)]
        print(
            f"- throughput ratio (its cost / this one's): {other / mine:.3f}x "
            f"[{', '.join(f'{r:.3f}' for r in ratios)}]; extra cost {mine - other:+.1f} us a request"
        )


if __name__ == "__main__":
    main()
