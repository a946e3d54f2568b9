"""The orchestrator: runs the stages in order and does their I/O (files, MLflow). Stage bodies stay pure."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import sklearn

from contract import artifacts, reference
from contract.risk import risk
from contract.scoring import Scorer
from contract.spec import DatasetSpec
from training import evaluate, gate, model, registry, train
from training.settings import TrainSettings
from training.validate import ValidationResult

REFERENCE_SAMPLE_ROWS = 5000
"""Training rows logged with the model as the drift reference (`drift --reference champion`)."""


@dataclass
class Candidate:
    """What the stages hand to each other; pickled to the work folder between stage subcommands."""

    spec: DatasetSpec
    data_sha256: str
    split: train.Split
    trained: train.Trained
    report: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    decision: gate.GateDecision | None = None
    version: str | None = None

    def save(self, workdir: Path) -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "candidate.joblib"
        joblib.dump(self, path)
        return path

    @staticmethod
    def load(workdir: Path) -> Candidate:
        path = workdir / "candidate.joblib"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run the earlier stage first")
        candidate: Candidate = joblib.load(path)
        return candidate


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fit(valid: ValidationResult, spec: DatasetSpec, data_sha256: str, settings: TrainSettings) -> Candidate:
    """Train stage: split, tune (each family of the setting), choose, threshold, baseline."""
    parts = train.split(valid.valid, spec, test_size=settings.test_size, seed=settings.seed)
    trained = train.fit(
        parts.train,
        spec,
        grids=settings.grids,
        folds=settings.cv_folds,
        seed=settings.seed,
        n_jobs=settings.n_jobs,
        tune_max_rows=settings.tune_max_rows,
        tie_margin=settings.auto_tie_margin,
    )
    return Candidate(spec=spec, data_sha256=data_sha256, split=parts, trained=trained)


def assess(c: Candidate, settings: TrainSettings) -> Candidate:
    """Evaluate stage: held-out metrics, intervals and plots."""
    x, y = c.split.test[c.spec.feature_names], train.labels(c.split.test, c.spec)
    with model.one_openmp_thread():
        proba = c.trained.pipeline.predict_proba(x)[:, 1]
    base = c.trained.baseline.predict_proba(x)[:, 1]
    family = c.trained.family
    c.report = evaluate.report(
        y, proba, base, c.trained.threshold, rounds=settings.bootstrap_rounds, seed=settings.seed, family=family
    )
    c.report["feature_importance"] = model.importances(c.trained.pipeline, c.spec, x, y, settings.seed)
    c.report["feature_importance_method"] = model.IMPORTANCE_METHODS[family]
    c.figures = evaluate.plots(c.report, importances(c), importance_method=model.IMPORTANCE_METHODS[family])
    return c


def importances(c: Candidate) -> dict[str, float]:
    """Per feature importance of the candidate (computed by the evaluate stage; see model.IMPORTANCE_METHODS)."""
    shares: dict[str, float] = c.report["feature_importance"]
    return shares


def champion_metrics(c: Candidate) -> tuple[str | None, dict[str, float] | None]:
    """The current champion scored on the candidate's test rows (None when there is none, or it has other
    features). Needs MLflow."""
    current = registry.champion(c.spec.name)
    if current is None:
        return None, None
    files = registry.load_files(current)
    if files["spec"].feature_names != c.spec.feature_names:
        return current.version, None
    served = registry.load_model(current)
    x, y = c.split.test[c.spec.feature_names], train.labels(c.split.test, c.spec)
    proba = served.predict_proba(x)[:, 1]
    return current.version, evaluate.metrics(y, proba, files["info"]["threshold"])


def decide(c: Candidate, settings: TrainSettings) -> Candidate:
    """Gate stage (reads the champion from MLflow, decides with the pure gate). The decision records which champion
    version it compared with: `register` promotes only if that is still the champion, or after gating again."""
    champ_version, champ = champion_metrics(c)
    c.decision = gate.decide(
        settings.gate,
        test=c.report["metrics"],
        cv=c.trained.cv,
        champion_test=champ,
        champion_version=champ_version,
        baseline_test=c.report["baseline"],
        family=c.trained.family,
    )
    c.report["champion"] = {"version": champ_version, "metrics": champ}
    return c


def _named(version: str | None) -> str:
    return "none" if version is None else f"version {version}"


def regate_if_champion_moved(c: Candidate, settings: TrainSettings) -> Candidate:
    """The compare of the compare-and-set (run it under the promotion lock): if the champion is no longer the
    version this candidate was gated against (another run promoted, or a rollback), gate it again against the
    champion now."""
    assert c.decision is not None, "gate stage has not run"
    gated_against = c.decision.champion_version
    current = registry.champion(c.spec.name)
    if (current.version if current else None) == gated_against:
        return c
    c = decide(c, settings)
    assert c.decision is not None
    moved = f"the champion moved from {_named(gated_against)} to {_named(c.decision.champion_version)} after the gate"
    if c.decision.passed:
        note = [f"ok: {moved}; gated again against it"]
        c.decision = replace(c.decision, reasons=[*c.decision.reasons, *note])
    else:
        note = [f"FAIL: {moved}, and the candidate does not pass against it"]
        c.decision = replace(c.decision, reasons=[*note, *c.decision.reasons])
    return c


def presets(c: Candidate) -> list[dict[str, Any]]:
    """Representative customers of the test rows (high, medium, low risk), for the UI."""
    x = c.split.test[c.spec.feature_names].reset_index(drop=True)
    proba = c.trained.pipeline.predict_proba(x)[:, 1]
    out = []
    for name, target in (("High risk", 0.95), ("Medium risk", None), ("Low risk", 0.05)):
        if target is None:  # the customer closest to three quarters of the threshold
            i = int(np.argmin(np.abs(proba - 0.75 * c.trained.threshold)))
        else:
            i = int(np.argmin(np.abs(proba - np.quantile(proba, target))))
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in x.iloc[i].to_dict().items()}
        out.append(
            {
                "name": name,
                "features": row,
                "churn_probability": float(proba[i]),
                "risk": risk(float(proba[i]), c.trained.threshold),
            }
        )
    return out


def _model_choice(c: Candidate) -> dict[str, Any]:
    """The family served, every family tuned with its out-of-fold ROC AUC, and what the family could not honour."""
    return {
        "model_family": c.trained.family,
        "best_params": c.trained.best_params,
        "candidates": c.trained.candidates,
        "model_warnings": c.trained.warnings,
    }


def _gate(c: Candidate) -> dict[str, Any]:
    """The gate's decision as reports and the model card show it: after `register`, the final one (gated again
    under the promotion lock when the champion had moved)."""
    decision = c.decision or gate.GateDecision(passed=False, reasons=["gate not run"])
    return {"passed": decision.passed, "reasons": list(decision.reasons), "champion_version": decision.champion_version}


def eval_report(c: Candidate) -> dict[str, Any]:
    return {
        "model_name": c.spec.name,
        "model_version": c.version,
        "threshold": c.trained.threshold,
        **{k: v for k, v in c.report.items() if k != "threshold"},
        "cv": c.trained.cv,
        **_model_choice(c),
        "gate": _gate(c),
    }


def info(c: Candidate, experiment_id: str | None = None) -> dict[str, Any]:
    """What the predictor serves on its info route and the UI shows: the model card. `experiment_id`: the MLflow
    experiment the version's run is logged in (None only for a card built outside `register`)."""
    y_train = train.labels(c.split.train, c.spec)
    train_proba = c.trained.pipeline.predict_proba(c.split.train[c.spec.feature_names])[:, 1]
    return {
        "model_name": c.spec.name,
        "threshold": c.trained.threshold,
        "metrics": c.report["metrics"],
        "confidence_intervals": c.report["confidence_intervals"],
        "baseline": c.report["baseline"],
        "baseline_beats_candidate": c.report["baseline_beats_candidate"],
        "baseline_comparison": c.report["baseline_comparison"],
        "cv": c.trained.cv,
        **_model_choice(c),
        "training_seconds": round(c.trained.fit_seconds, 3),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_sha256": c.data_sha256,
        "rows": {"train": len(c.split.train), "test": len(c.split.test)},
        "base_rate": float(y_train.mean()),
        "predicted_positive_rate": float((train_proba >= c.trained.threshold).mean()),
        "feature_importance": importances(c),
        "feature_importance_method": c.report["feature_importance_method"],
        "presets": presets(c),
        "curves": c.report["curves"],
        "gate": _gate(c),
        "experiment_id": experiment_id,
    }


def register(
    c: Candidate,
    settings: TrainSettings,
    experiment_id: str,
    *,
    lock_wait: float = registry.LOCK_WAIT_SECONDS,
    lock_ttl: float = registry.LOCK_TTL_SECONDS,
) -> Candidate:
    """Register stage: log the run and a new registry version; move `champion` (or `challenger`, with
    settings.alias) only if the gate passed.

    Promotion is a compare-and-set: under the registry's promotion lock the champion is read again, and if it
    moved since the gate the candidate is gated again against the new one (see `regate_if_champion_moved`); the
    version is logged with that final decision (its `gate_passed` tag, its eval report) and promoted only if it
    passed. Two runs at once are thereby serialised: the later one is compared with the earlier one's champion,
    never with the one both started from (a lost update). A candidate that failed its gate needs no lock.
    Raises registry.PromotionLockTimeoutError (nothing logged, nothing moved) when the lock stays held."""
    assert c.decision is not None, "gate stage has not run"
    if not c.decision.passed:
        return _log(c, settings, experiment_id)
    with registry.promotion_lock(c.spec.name, wait=lock_wait, ttl=lock_ttl):
        c = _log(regate_if_champion_moved(c, settings), settings, experiment_id)
        assert c.decision is not None and c.version is not None
        if c.decision.passed and settings.alias == registry.CHALLENGER:
            registry.set_challenger(c.spec.name, c.version)
        elif c.decision.passed:
            registry.promote(c.spec.name, c.version)
    return c


def _log(c: Candidate, settings: TrainSettings, experiment_id: str) -> Candidate:
    """The MLflow run and a new registry version, tagged with the gate's decision (no alias moved)."""
    assert c.decision is not None
    names = c.spec.feature_names
    sample = c.split.train[names].sample(n=min(REFERENCE_SAMPLE_ROWS, len(c.split.train)), random_state=settings.seed)
    files = artifacts.texts(
        spec=c.spec,
        reference=reference.stats(c.split.train, c.spec),
        sample_csv=sample.to_csv(index=False),
        info=info(c, experiment_id),
        report=eval_report(c),
        scorer=Scorer.from_pipeline(c.trained.pipeline, c.spec).to_file(),
    )
    tags = {
        "git_commit": git_commit(),
        "data_sha256": c.data_sha256,
        "sklearn_version": sklearn.__version__,
        "mlflow_version": mlflow.__version__,
        "python_version": platform.python_version(),
        registry.GATE_PASSED: str(c.decision.passed).lower(),
    }
    params = {
        **c.trained.best_params,
        "model_family": c.trained.family,
        "baseline_beats_candidate": c.report["baseline_beats_candidate"],
        "threshold": round(c.trained.threshold, 6),
        "test_size": settings.test_size,
        "seed": settings.seed,
        "cv_folds": settings.cv_folds,
        "train_rows": len(c.split.train),
        "test_rows": len(c.split.test),
    }
    metrics = {f"test_{k}": v for k, v in c.report["metrics"].items()}
    metrics |= {f"cv_{k}": v for k, v in c.trained.cv.items()}
    metrics |= {f"baseline_{k}": v for k, v in c.report["baseline"].items()}
    metrics |= {f"cv_roc_auc_{family}": v["cv_roc_auc"] for family, v in c.trained.candidates.items()}
    metrics |= {
        f"test_{k}_ci_{side}": ci[i]
        for k, ci in c.report["confidence_intervals"].items()
        for i, side in enumerate(("low", "high"))
    }
    logged = registry.log_candidate(
        experiment_id=experiment_id,
        spec=c.spec,
        pipeline=c.trained.pipeline,
        input_example=c.split.train[names].head(3),
        params=params,
        metrics=metrics,
        figures=c.figures,
        files=files,
        tags=tags,
    )
    c.version = logged.version
    return c


def write_report(c: Candidate, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "eval_report.json"
    path.write_text(json.dumps(eval_report(c), indent=1), encoding="utf-8")
    return path


def quarantine(result: ValidationResult, path: Path) -> Path | None:
    if result.rejected is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    result.rejected.to_csv(path, index=False)
    return path
