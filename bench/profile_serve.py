"""Where a server's request CPU goes: py-spy samples it while bench/serve_bench.py's wrk load runs.

    python3 -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy          # py-spy is not a project dependency
    .venv/bin/python bench/profile_serve.py --py-spy /tmp/spy/bin/py-spy \
        --variants predictor,predictor-lean,baseline --scenario "1-row c16" --seconds 15

Same setup as serve_bench (MLflow server + champion trained by the pipeline, server pinned to core 0, wrk to
core 1). py-spy records the server process (by default `--gil`: only the thread holding the GIL, which is
where a Python server's request CPU is; threads blocked in C calls would otherwise count as busy) and the folded
stacks are bucketed by the innermost frame that belongs to a known part (first match wins, innermost first).
Prints the share of samples per part and the top leaf functions. Raw folded stacks are kept with --keep.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import serve_bench as sb

# (part, substrings of a frame "function (file:line)"). A sample goes to the innermost frame that matches a part,
# so NumPy or JSON work lands on the ChurnGuard / library code that called it; generic parts are the fallback.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("logging (per-request log lines, warnings)", ("logging/__init__.py", "asgi_logger", "timing_asgi", "warnings.py")),
    ("live quality: ids, tallies, shadow", ("predictor/quality.py", "predictor/shadow.py", "contract/quality.py")),
    ("MLflow tracing (span build + export)", ("predictor/tracing.py", "mlflow/")),
    ("fast-path scoring (contract/scoring.py)", ("contract/scoring.py",)),
    ("request decode + checks (predictor/decode.py)", ("predictor/decode.py",)),
    ("Prometheus metrics + drift (predictor/metrics.py)", ("predictor/metrics.py", "prometheus_client")),
    ("predictor handler + response build (predictor/model.py)", ("predictor/model.py",)),
    ("predictor middleware (predictor/server.py)", ("predictor/server.py",)),
    (
        "sklearn input validation / ColumnTransformer / pipeline",
        ("sklearn/utils/validation", "sklearn/compose", "sklearn/pipeline", "sklearn/utils/_set_output"),
    ),
    ("sklearn GBM predict (other)", ("sklearn/",)),
    ("pandas (DataFrame build)", ("pandas/",)),
    ("pydantic (request/response models)", ("pydantic", "fastapi/_compat", "fastapi/encoders")),
    ("JSON encode/decode", ("orjson", "json/", "fastapi/responses", "starlette/responses")),
    ("baseline handler (bench/baseline_server.py)", ("baseline_server.py",)),
    ("KServe dataplane + model wrapper", ("kserve/",)),
    ("HTTP stack (uvicorn, starlette, fastapi, asyncio)", ("uvicorn/", "starlette/", "fastapi/", "asyncio/", "anyio/")),
]
FALLBACK: list[tuple[str, tuple[str, ...]]] = [("numpy (uncategorised caller)", ("numpy/",))]


def bucket(stack: str) -> str:
    frames = stack.split(";")
    for parts in (PARTS, FALLBACK):
        for frame in reversed(frames):
            for part, keys in parts:
                if any(k in frame for k in keys):
                    return part
    return "gc / interpreter / other"


def summarise(folded: Path, top: int) -> None:
    parts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        parts[bucket(stack)] += n
        leaves[stack.split(";")[-1]] += n
    print(f"  {total} samples")
    for part, n in parts.most_common():
        print(f"  {100 * n / total:5.1f}%  {part}")
    print("  top leaf frames:")
    for leaf, n in leaves.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {leaf[:150]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--py-spy", help="path of the py-spy binary")
    ap.add_argument("--summarise", nargs="+", type=Path, help="only bucket these folded files (no run)")
    ap.add_argument("--variants", default="predictor,predictor-lean,baseline")
    ap.add_argument("--scenario", default="1-row c16", choices=[s.name for s in sb.SCENARIOS])
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every non-idle thread (default: only the thread holding the GIL, i.e. Python CPU)",
    )
    args = ap.parse_args()
    if args.summarise:
        for folded in args.summarise:
            print(f"\n{folded}:")
            summarise(folded, args.top)
        return
    if not args.py_spy:
        ap.error("--py-spy is required to record")
    os.sched_setaffinity(0, {int(sb.LOAD_CORE)})
    scenario = next(s for s in sb.SCENARIOS if s.name == args.scenario)
    with tempfile.TemporaryDirectory(prefix="churnguard-profile-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        quiet = work / "quiet-logging.json"
        quiet.write_text(json.dumps(sb.QUIET_LOG_CONFIG))
        chosen = [sb.variants(quiet)[n] for n in args.variants.split(",")]
        rows = sb.load_rows(sb.ROOT / "data" / "raw" / "churn.csv")
        with sb.mlflow_with_champion(work) as (tracking, _):
            for v in chosen:
                port = sb.free_port()
                cmd, ready = sb.server_cmd(v, port)
                env = {**os.environ, **sb.THREADS_ENV, "MLFLOW_TRACKING_URI": tracking, **dict(v.env)}
                cwd = sb.worktree(v.checkout, work) if v.checkout else sb.ROOT
                log = work / f"{v.name}-profile.log"
                with sb.started(["taskset", "-c", sb.SERVER_CORE, *cmd], env, log, cwd=cwd) as proc:
                    sb.wait_ready(ready, proc, timeout=90)
                    sb.settle([proc.pid, *sb.descendants(proc.pid)], limit=60)  # deferred imports done
                    base = f"http://127.0.0.1:{port}"
                    script = sb.lua_script(v.kind, scenario, rows, work)
                    sb.wrk(base, script, scenario.connections, 3)  # warm-up
                    folded = work / f"{v.name}-{scenario.rows}.folded"
                    spy = subprocess.Popen(
                        [
                            *("taskset", "-c", sb.LOAD_CORE, args.py_spy, "record", "--pid", str(proc.pid)),
                            *("--nonblocking", "--subprocesses", "--rate", "200", "--format", "raw"),
                            *(() if args.all_threads else ("--gil",)),
                            *("--duration", str(args.seconds), "--output", str(folded)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    try:
                        time.sleep(0.5)
                        load = sb.wrk(base, script, scenario.connections, args.seconds)
                        spy.wait(timeout=args.seconds + 60)
                    finally:
                        if spy.poll() is None:
                            spy.terminate()
                            spy.wait()
                print(
                    f"\n{v.name}, {scenario.name}: {load['req_s']:,.0f} req/s under py-spy "
                    f"(p50 {load['p50_ms']:.2f} ms); CPU by part:"
                )
                summarise(folded, args.top)


if __name__ == "__main__":
    main()
