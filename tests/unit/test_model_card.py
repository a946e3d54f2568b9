"""The model card's data: curves small enough to serve yet true to sklearn's, and info.json carrying the final gate
decision and the run's experiment (the registry replaced by fakes: no I/O)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from contract import artifacts
from contract.spec import DatasetSpec
from training import evaluate, model, pipeline, registry, train
from training.data import generate
from training.settings import TrainSettings


def scores(n: int, seed: int, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    proba = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, np.round(proba, 1) if ties else proba


def monotone(values: list[float]) -> bool:
    return all(a <= b for a, b in pairwise(values))


def four_decimals(values: list[float]) -> bool:
    return all(round(v, 4) == v for v in values)


@pytest.fixture(scope="module")
def drawn() -> dict[str, Any]:
    y, proba = scores(4000, 0)
    _, base = scores(4000, 0)
    base = np.clip(base + np.random.default_rng(1).normal(0, 0.2, len(base)), 0, 1)
    return evaluate.curves(y, proba, base, 0.5)


def test_roc_curves_are_at_most_101_monotone_points_from_0_0_to_1_1(drawn: dict[str, Any]) -> None:
    for name in ("roc", "baseline_roc"):
        fpr, tpr = drawn[name]["fpr"], drawn[name]["tpr"]
        assert len(fpr) == len(tpr) == evaluate.CURVE_POINTS, name  # 4,000 rows: downsampled to exactly 101
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1), name
        assert monotone(fpr) and monotone(tpr) and four_decimals(fpr + tpr), name


def test_downsampled_curves_keep_the_shape(drawn: dict[str, Any]) -> None:
    y, proba = scores(4000, 0)
    assert auc(drawn["roc"]["fpr"], drawn["roc"]["tpr"]) == pytest.approx(roc_auc_score(y, proba), abs=2e-3)
    recall, precision = drawn["pr"]["recall"], drawn["pr"]["precision"]
    assert len(recall) == len(precision) <= evaluate.CURVE_POINTS
    assert monotone(recall) and recall[0] == 0 and recall[-1] == 1
    assert all(0 <= p <= 1 for p in precision) and four_decimals(recall + precision)
    step_area = float(np.sum(np.diff(recall) * np.asarray(precision[1:])))  # average precision's step sum
    assert step_area == pytest.approx(average_precision_score(y, proba), abs=0.01)


def test_a_short_curve_is_kept_whole() -> None:
    y, proba = scores(60, 2, ties=True)  # 11 distinct scores: fewer than 101 points
    fpr, tpr, _ = roc_curve(y, proba)
    roc = evaluate.curves(y, proba, proba, 0.5)["roc"]
    assert roc == {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()}


@pytest.mark.parametrize("ties", [False, True])
def test_calibration_bins_are_sklearns_quantile_bins_with_their_counts(ties: bool) -> None:
    y, proba = scores(997, 3, ties=ties)
    got = evaluate.calibration(y, proba)
    observed, predicted = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    np.testing.assert_allclose(got["observed"], observed, atol=5e-5)
    np.testing.assert_allclose(got["mean_predicted"], predicted, atol=5e-5)
    assert len(got["count"]) == len(observed) <= 10 and sum(got["count"]) == len(y)
    assert all(isinstance(n, int) and n > 0 for n in got["count"])
    if not ties:
        assert len(got["count"]) == 10 and max(got["count"]) - min(got["count"]) <= 1  # quantiles: equal bins


def test_confusion_matrix_is_at_the_models_threshold() -> None:
    y, proba = scores(500, 4)
    report = evaluate.report(y, proba, proba, 0.37, rounds=100, seed=0)
    tn, fp, fn, tp = confusion_matrix(y, proba >= 0.37).ravel()
    expected = {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}
    assert report["curves"]["confusion_matrix"] == report["confusion_matrix"] == expected


def test_the_curves_add_less_than_20_kb(drawn: dict[str, Any]) -> None:
    assert len(json.dumps(drawn, indent=1)) < 20_000


# -- info.json as `register` writes it ------------------------------------------------------------------------
SETTINGS = TrainSettings(_env_file=None, bootstrap_rounds=100, gate_min_roc_auc=0.5, gate_min_f1=0.5)


@pytest.fixture(scope="module")
def candidate(spec: DatasetSpec) -> pipeline.Candidate:
    """A logistic candidate on 800 synthetic rows, fitted directly (no grid search), then evaluated as `run` does."""
    parts = train.split(generate(800, seed=7), spec, test_size=0.25, seed=0)
    x, y = parts.train[spec.feature_names], train.labels(parts.train, spec)
    trained = train.Trained(
        pipeline=model.logistic(spec, 0).fit(x, y),
        baseline=model.baseline(spec).fit(x, y),
        best_params={"C": 1.0},
        threshold=0.4,
        cv={"roc_auc": 0.93, "f1": 0.8, "baseline_roc_auc": 0.93},
        fit_seconds=0.1,
        family="logistic",
    )
    c = pipeline.Candidate(spec=spec, data_sha256="0" * 64, split=parts, trained=trained)
    return pipeline.assess(c, SETTINGS)


def registered(c: pipeline.Candidate, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`register` against a registry where another run promoted version 3 after this candidate's gate (which saw
    no champion): the files it logs, by name."""
    monkeypatch.setattr(pipeline, "champion_metrics", lambda _c: (None, None))
    c = pipeline.decide(c, SETTINGS)
    assert c.decision is not None and c.decision.champion_version is None
    champ = {**c.report["metrics"], "roc_auc": c.report["metrics"]["roc_auc"] - 0.005}  # within max_drop
    monkeypatch.setattr(pipeline, "champion_metrics", lambda _c: ("3", champ))
    logged: dict[str, Any] = {}

    @contextmanager
    def lock(name: str, **_: Any) -> Iterator[str]:
        yield "token"

    def log_candidate(**kw: Any) -> registry.Logged:
        logged.update(kw)
        return registry.Logged("run-1", "4")

    monkeypatch.setattr(registry, "promotion_lock", lock)
    monkeypatch.setattr(registry, "champion", lambda name: type("Version", (), {"version": "3"})())
    monkeypatch.setattr(registry, "log_candidate", log_candidate)
    monkeypatch.setattr(registry, "promote", lambda name, version: None)
    monkeypatch.setattr(pipeline, "git_commit", lambda: "abc")
    pipeline.register(c, SETTINGS, "42")
    files: dict[str, str] = logged["files"]
    return files


def test_info_carries_the_final_gate_decision_and_the_experiment(
    candidate: pipeline.Candidate, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = registered(candidate, monkeypatch)
    info, report = json.loads(files[artifacts.INFO]), json.loads(files[artifacts.EVAL_REPORT])
    assert info["gate"] == report["gate"]
    assert info["gate"]["champion_version"] == "3" and info["gate"]["passed"] is True  # gated again, against 3
    assert any("champion moved from none to version 3" in r for r in info["gate"]["reasons"])
    assert info["experiment_id"] == "42"
    assert info["curves"] == report["curves"]
    assert set(info["curves"]) == {"roc", "pr", "calibration", "confusion_matrix", "baseline_roc"}
    cm = info["curves"]["confusion_matrix"]
    assert sum(cm.values()) == info["rows"]["test"]
