"""Evaluation: the fast bootstrap equals sklearn's metrics on every resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from training.evaluate import baseline_verdict, bootstrap_ci


def sklearn_bootstrap(y: np.ndarray, proba: np.ndarray, threshold: float, rounds: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    f1s, aucs = [], []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        f1s.append(f1_score(y[idx], proba[idx] >= threshold, zero_division=0))
        aucs.append(roc_auc_score(y[idx], proba[idx]))
    return {k: [np.percentile(v, 2.5), np.percentile(v, 97.5)] for k, v in (("f1", f1s), ("roc_auc", aucs))}


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_matches_sklearn(ties: bool) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    proba = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    if ties:
        proba = np.round(proba, 1)  # many tied scores, across classes
    ours = bootstrap_ci(y, proba, 0.4, rounds=200, seed=5)
    ref = sklearn_bootstrap(y, proba, 0.4, 200, 5)
    for k in ("f1", "roc_auc"):
        np.testing.assert_allclose(ours[k], ref[k], atol=1e-12)


def test_tiny_samples_skip_single_class_resamples() -> None:
    y = np.array([0, 0, 0, 0, 1])
    proba = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    ours = bootstrap_ci(y, proba, 0.5, rounds=100, seed=1)
    ref = sklearn_bootstrap(y, proba, 0.5, 100, 1)
    for k in ("f1", "roc_auc"):
        np.testing.assert_allclose(ours[k], ref[k], atol=1e-12)


@pytest.mark.parametrize(
    ("candidate", "baseline", "beats", "text"),
    [
        (0.955, 0.963, True, "the logistic baseline beats the gbm candidate on test ROC AUC (0.963 vs 0.955)"),
        (0.970, 0.963, False, "the gbm candidate beats the logistic baseline on test ROC AUC (0.970 vs 0.963)"),
        (0.9551, 0.9549, False, "the gbm candidate beats the logistic baseline on test ROC AUC (0.955100 vs 0.954900)"),
        (0.96, 0.96, False, "the logistic baseline ties with the gbm candidate on test ROC AUC (0.960000)"),
    ],
)
def test_the_baseline_verdict_says_plainly_who_wins(candidate: float, baseline: float, beats: bool, text: str) -> None:
    got = baseline_verdict("gbm", {"roc_auc": candidate}, {"roc_auc": baseline})
    assert got == {"baseline_beats_candidate": beats, "baseline_comparison": text}
