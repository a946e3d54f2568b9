"""Evaluation: the fast bootstrap equals sklearn's metrics on every resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from training.evaluate import bootstrap_ci


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
