"""Training benchmark (issue 2): the reference configuration vs ChurnGuard's `run`, in one process, same data.

    .venv/bin/python bench/train_bench.py                  # reference vs run, then run on 200,000 rows
    .venv/bin/python bench/train_bench.py --rounds 2       # interleave reference/run twice, report medians
    .venv/bin/python bench/train_bench.py --big-rows 0     # skip the 200k-row run
    .venv/bin/python bench/train_bench.py --big-stages     # also time the 200k run stage by stage in-process

Measured:
  * reference: Pipeline([StandardScaler(), GradientBoostingClassifier(random_state=42)]) + GridSearchCV over
    n_estimators [100,200] x max_depth [3,5] x learning_rate [0.05,0.1] x subsample [0.8,1.0], cv=5,
    scoring roc_auc, n_jobs=1, default refit=True, on ChurnGuard's stratified 80/20 split (training.train.split
    with the default seed/test_size); wall time of fit + predict_proba on the test rows; test ROC AUC.
  * ChurnGuard: the real `run` in this process, stage by stage exactly as training/cli.py `run` calls them
    (connect to a fresh embedded sqlite MLflow store in a temp dir, validate, fit, assess, decide, register,
    write the report); wall time of the whole; test ROC AUC from the report.
  * 200k: `python -m training generate-data --rows 200000` (untimed), then `python -m training run` as a
    subprocess (fresh CHURN_HOME, no MLFLOW_TRACKING_URI): the user-visible end-to-end time, imports included.

Threads are set deliberately before NumPy/sklearn load: one BLAS/OpenMP thread per process (override with the
environment); the grid search's process parallelism is ChurnGuard's own CHURN_N_JOBS (default 2).
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ.setdefault(_var, "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # ChurnGuard's run goes to a throwaway embedded store
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from contract.spec import DatasetSpec  # noqa: E402
from training import pipeline, registry, train  # noqa: E402
from training.settings import TrainSettings  # noqa: E402
from training.validate import validate_file  # noqa: E402

REFERENCE_GRID = {
    "model__n_estimators": [100, 200],
    "model__max_depth": [3, 5],
    "model__learning_rate": [0.05, 0.1],
    "model__subsample": [0.8, 1.0],
}
SPEEDUP_TARGET = 3.0
BIG_SECONDS_TARGET = 120.0


def reference(data: Path, spec_path: Path) -> dict[str, Any]:
    """The reference project's configuration on ChurnGuard's split (same rows, same seed, same test part)."""
    settings = TrainSettings()
    spec = DatasetSpec.load(spec_path)
    start = time.perf_counter()
    valid = validate_file(data, spec).valid
    parts = train.split(valid, spec, test_size=settings.test_size, seed=settings.seed)
    x, y = parts.train[spec.feature_names], train.labels(parts.train, spec)
    model = Pipeline([("scale", StandardScaler()), ("model", GradientBoostingClassifier(random_state=42))])
    search = GridSearchCV(model, REFERENCE_GRID, cv=5, scoring="roc_auc", n_jobs=1).fit(x, y)
    proba = search.predict_proba(parts.test[spec.feature_names])[:, 1]
    seconds = time.perf_counter() - start
    auc = float(roc_auc_score(train.labels(parts.test, spec), proba))
    best = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return {"seconds": seconds, "roc_auc": auc, "best_params": best, "test_rows": len(parts.test)}


def churnguard_run(data: Path, spec_path: Path, home: Path) -> dict[str, Any]:
    """ChurnGuard's `run`, the stage calls of training/cli.py `run`, each timed (no console rendering)."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri exports it; each run gets its own store
    settings = TrainSettings(home=home)
    assert settings.embedded, "MLFLOW_TRACKING_URI must be unset for the throwaway embedded store"
    stages: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        stages[name] = time.perf_counter() - t
        return out

    start = time.perf_counter()
    experiment_id = timed(
        "connect (sqlite store)",
        lambda: registry.connect(settings.resolved_tracking_uri, home=settings.home, experiment=settings.experiment),
    )
    spec = timed("load spec", lambda: DatasetSpec.load(spec_path))
    result = timed("validate (pandera)", lambda: validate_file(data, spec))
    assert result.ok, result.failures[:5]
    digest = timed("sha256", lambda: pipeline.sha256(data))
    c = timed("fit (grid + OOF threshold + refit)", lambda: pipeline.fit(result, spec, digest, settings))
    c = timed("assess (metrics, bootstrap, plots)", lambda: pipeline.assess(c, settings))
    c = timed("decide (gate)", lambda: pipeline.decide(c, settings))
    c = timed("register (MLflow run + model)", lambda: pipeline.register(c, settings, experiment_id))
    report = timed("write report", lambda: pipeline.write_report(c, settings.home / "reports"))
    seconds = time.perf_counter() - start
    plt.close("all")
    assert c.decision is not None
    return {
        "seconds": seconds,
        "roc_auc": float(c.report["metrics"]["roc_auc"]),
        "best_params": c.trained.best_params,
        "gate_passed": c.decision.passed,
        "version": c.version,
        "stages": stages,
        "report": str(report),
        "n_jobs": settings.n_jobs,
    }


def big_run(rows: int, spec_path: Path, work: Path) -> dict[str, Any]:
    """`python -m training run` as a user runs it, on `rows` generated rows (generation not timed)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CHURN_HOME"] = str(work / "home")
    csv = work / "big.csv"
    gen = [sys.executable, "-m", "training", "generate-data", "--rows", str(rows), "--seed", "42", "--out", str(csv)]
    subprocess.run(gen, env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    cmd = [sys.executable, "-m", "training", "run", "--data", str(csv), "--spec", str(spec_path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
    seconds = time.perf_counter() - start
    report_path = work / "home" / "reports" / "eval_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "roc_auc": report.get("metrics", {}).get("roc_auc", float("nan")),
        "tail": (proc.stdout + proc.stderr)[-1500:] if proc.returncode not in (0, 1) else "",
        "csv": csv,
    }


def show_stages(title: str, stages: dict[str, float], total: float) -> None:
    print(f"\n{title}")
    for name, s in stages.items():
        print(f"  {name:<40} {s:8.2f} s  {100 * s / total:5.1f}%")
    print(f"  {'total':<40} {total:8.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data/raw/churn.csv")
    ap.add_argument("--spec", type=Path, default=ROOT / "data/churn.spec.yaml")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved reference/run rounds (medians reported)")
    ap.add_argument("--big-rows", type=int, default=200_000, help="rows of the end-to-end run (0: skip)")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="skip the run into an existing store")
    ap.add_argument("--big-stages", action="store_true", help="also time the big run stage by stage in-process")
    args = ap.parse_args()

    threads = {v: os.environ[v] for v in THREAD_VARS}
    print(f"threads: {threads}; CHURN_N_JOBS={os.environ.get('CHURN_N_JOBS', '2 (default)')}; cpus={os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()}")
    refs: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churnguard-bench-") as tmp:
        for i in range(args.rounds):
            # alternate the order so neither side always runs on a warmer (or busier) machine
            order = ("ref", "run") if i % 2 == 0 else ("run", "ref")
            for side in order:
                if side == "ref":
                    refs.append(reference(args.data, args.spec))
                    print(f"round {i + 1}: reference {refs[-1]['seconds']:.2f} s, ROC AUC {refs[-1]['roc_auc']:.4f}")
                else:
                    runs.append(churnguard_run(args.data, args.spec, Path(tmp) / f"home-{i}"))
                    r = runs[-1]
                    print(f"round {i + 1}: churnguard run {r['seconds']:.2f} s, ROC AUC {r['roc_auc']:.4f}")
                    if args.warm:  # again into the same store: no schema creation, a champion to compare with
                        warm.append(churnguard_run(args.data, args.spec, Path(tmp) / f"home-{i}"))
                        print(f"round {i + 1}: churnguard run, existing store {warm[-1]['seconds']:.2f} s")
        show_stages("ChurnGuard run stages, fresh store (last round):", runs[-1]["stages"], runs[-1]["seconds"])
        if warm:
            show_stages("ChurnGuard run stages, existing store (last round):", warm[-1]["stages"], warm[-1]["seconds"])
        big: dict[str, Any] | None = None
        big_stages: dict[str, Any] | None = None
        if args.big_rows:
            big = big_run(args.big_rows, args.spec, Path(tmp) / "big")
            print(f"\n{args.big_rows:,} rows: python -m training run {big['seconds']:.1f} s (exit {big['exit_code']})")
            if big["tail"]:
                print(big["tail"])
            if args.big_stages:
                big_stages = churnguard_run(big["csv"], args.spec, Path(tmp) / "big-stages")
                title = f"{args.big_rows:,}-row run stages (in-process):"
                show_stages(title, big_stages["stages"], big_stages["seconds"])

    ratios = [r["seconds"] / c["seconds"] for r, c in zip(refs, runs, strict=True)]
    ref_s = statistics.median(r["seconds"] for r in refs)
    run_s = statistics.median(c["seconds"] for c in runs)
    ref_auc, run_auc = refs[-1]["roc_auc"], runs[-1]["roc_auc"]
    ratio = statistics.median(ratios)
    print(f"\nreference best params: {refs[-1]['best_params']}")
    print(f"churnguard best params: {runs[-1]['best_params']} (n_jobs={runs[-1]['n_jobs']})")
    print(f"same-round ratios reference/run: {', '.join(f'{x:.2f}' for x in ratios)}")
    print("\n| measure | reference | ChurnGuard run | ratio / target | result |")
    print("|---|---|---|---|---|")
    speed_ok = ratio >= SPEEDUP_TARGET and run_auc >= ref_auc
    print(
        f"| wall time, {refs[-1]['test_rows'] * 5:,} rows, fresh throwaway store (median of {args.rounds}) | "
        f"{ref_s:.2f} s | "
        f"{run_s:.2f} s | {ratio:.2f}x faster (target >= {SPEEDUP_TARGET:.0f}x) | {'PASS' if speed_ok else 'FAIL'} |"
    )
    if warm:
        warm_s = statistics.median(w["seconds"] for w in warm)
        warm_ratio = statistics.median(r["seconds"] / w["seconds"] for r, w in zip(refs, warm, strict=True))
        print(
            f"| wall time, same, into an existing store (2nd run; informative) | {ref_s:.2f} s | {warm_s:.2f} s | "
            f"{warm_ratio:.2f}x faster | {'PASS' if warm_ratio >= SPEEDUP_TARGET else 'FAIL'} |"
        )
    print(
        f"| test ROC AUC (same split) | {ref_auc:.4f} | {run_auc:.4f} | {run_auc - ref_auc:+.4f} (target >= 0) | "
        f"{'PASS' if run_auc >= ref_auc else 'FAIL'} |"
    )
    if big is not None:
        big_ok = big["seconds"] <= BIG_SECONDS_TARGET and big["exit_code"] in (0, 1)
        print(
            f"| {args.big_rows:,} rows end to end (`python -m training run`) | - | {big['seconds']:.1f} s "
            f"(ROC AUC {big['roc_auc']:.4f}, exit {big['exit_code']}) | target <= {BIG_SECONDS_TARGET:.0f} s | "
            f"{'PASS' if big_ok else 'FAIL'} |"
        )


if __name__ == "__main__":
    main()
