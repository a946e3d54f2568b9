"""Train stage: stratified split, grid search, out-of-fold threshold, logistic baseline (pure, no I/O)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline

from contract.spec import DatasetSpec
from training import model


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass
class Trained:
    pipeline: Pipeline
    baseline: Pipeline
    best_params: dict[str, Any]
    threshold: float
    cv: dict[str, float]
    """Out-of-fold metrics on the training part: roc_auc, f1 (at the chosen threshold), baseline_roc_auc."""
    fit_seconds: float


def labels(df: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The target as 0/1, 1 meaning the spec's positive value."""
    return (df[spec.target.name] == spec.target.positive).to_numpy(dtype=np.int64)


def split(df: pd.DataFrame, spec: DatasetSpec, *, test_size: float, seed: int) -> Split:
    """Stratified split; the test part is touched only by the evaluate stage."""
    train, test = train_test_split(df, test_size=test_size, stratify=labels(df, spec), random_state=seed)
    return Split(train, test)


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut that maximises F1 (ties: the highest cut, i.e. fewer alarms)."""
    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]
    return float(thresholds[best])


def fit(
    train: pd.DataFrame,
    spec: DatasetSpec,
    *,
    grid: dict[str, list[Any]],
    folds: int,
    seed: int,
    n_jobs: int,
    tune_max_rows: int,
) -> Trained:
    """Grid-search the GBM (on at most `tune_max_rows` rows), pick the F1 threshold out of fold, refit on all."""
    start = time.perf_counter()
    x, y = train[spec.feature_names], labels(train, spec)
    tune_x, tune_y = x, y
    if len(x) > tune_max_rows:  # large sets: tune on a stratified sample, refit the winner on everything
        tune_x, _, tune_y, _ = train_test_split(x, y, train_size=tune_max_rows, stratify=y, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        model.gbm(spec, seed),
        {f"model__{k}": v for k, v in grid.items()},
        cv=cv,
        scoring="roc_auc",
        n_jobs=n_jobs,
        refit=False,
    ).fit(tune_x, tune_y)
    best = clone(model.gbm(spec, seed)).set_params(**search.best_params_)
    oof = cross_val_predict(best, tune_x, tune_y, cv=cv, method="predict_proba", n_jobs=n_jobs)[:, 1]
    threshold = best_f1_threshold(tune_y, oof)
    base_oof = cross_val_predict(model.baseline(spec), tune_x, tune_y, cv=cv, method="predict_proba")[:, 1]
    pipeline = best.fit(x, y)
    base = model.baseline(spec).fit(x, y)
    return Trained(
        pipeline=pipeline,
        baseline=base,
        best_params={k.removeprefix("model__"): v for k, v in search.best_params_.items()},
        threshold=threshold,
        cv={
            "roc_auc": float(roc_auc_score(tune_y, oof)),
            "f1": float(f1_score(tune_y, oof >= threshold)),
            "baseline_roc_auc": float(roc_auc_score(tune_y, base_oof)),
        },
        fit_seconds=time.perf_counter() - start,
    )
