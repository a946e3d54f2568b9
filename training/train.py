"""Train stage: stratified split, grid search per model family, family choice, out-of-fold threshold, logistic
baseline (pure, no I/O)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
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
    family: model.Family = "gbm"
    """The model family of `pipeline`."""
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every family tuned (one, or three with auto): its out-of-fold ROC AUC and best parameters."""
    warnings: list[str] = field(default_factory=list)
    """What the chosen family could not honour (monotonic constraints)."""


@dataclass(frozen=True)
class Tuned:
    """One family after its grid search: the best parameters and their pooled out-of-fold probabilities."""

    family: model.Family
    params: dict[str, Any]
    oof: np.ndarray
    roc_auc: float


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


def choose(tuned: list[Tuned], *, tie_margin: float) -> Tuned:
    """The best out-of-fold ROC AUC; any family within `tie_margin` of it counts as tied, and the simplest tied
    family wins (`tuned` is ordered simplest first, as model.FAMILIES)."""
    best = max(t.roc_auc for t in tuned)
    return next(t for t in tuned if t.roc_auc >= best - tie_margin)


def tune(
    family: model.Family,
    x: pd.DataFrame,
    y: np.ndarray,
    spec: DatasetSpec,
    *,
    grid: dict[str, list[Any]],
    cv: StratifiedKFold,
    seed: int,
    n_jobs: int,
) -> Tuned:
    """Grid-search one family by ROC AUC, then the winner's pooled out-of-fold probabilities on the same folds."""
    search = GridSearchCV(
        model.build(family, spec, seed),
        {f"model__{k}": v for k, v in grid.items()},
        cv=cv,
        scoring="roc_auc",
        n_jobs=n_jobs,
        refit=False,
    ).fit(x, y)
    best = model.build(family, spec, seed).set_params(**search.best_params_)
    oof = cross_val_predict(best, x, y, cv=cv, method="predict_proba", n_jobs=n_jobs)[:, 1]
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return Tuned(family, params, oof, float(roc_auc_score(y, oof)))


def fit(
    train: pd.DataFrame,
    spec: DatasetSpec,
    *,
    grids: dict[model.Family, dict[str, list[Any]]],
    folds: int,
    seed: int,
    n_jobs: int,
    tune_max_rows: int,
    tie_margin: float = 0.002,
) -> Trained:
    """Tune each family in `grids` (on at most `tune_max_rows` rows), keep the best out-of-fold ROC AUC (near-ties to
    the simpler family), pick its F1 threshold out of fold, refit it and the untuned logistic baseline on all rows."""
    start = time.perf_counter()
    x, y = train[spec.feature_names], labels(train, spec)
    tune_x, tune_y = x, y
    if len(x) > tune_max_rows:  # large sets: tune on a stratified sample, refit the winner on everything
        tune_x, _, tune_y, _ = train_test_split(x, y, train_size=tune_max_rows, stratify=y, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    order = [f for f in model.FAMILIES if f in grids]  # simplest first, whatever order `grids` came in
    with model.one_openmp_thread():
        tuned = [tune(f, tune_x, tune_y, spec, grid=grids[f], cv=cv, seed=seed, n_jobs=n_jobs) for f in order]
        chosen = choose(tuned, tie_margin=tie_margin)
        threshold = best_f1_threshold(tune_y, chosen.oof)
        base_oof = cross_val_predict(model.baseline(spec), tune_x, tune_y, cv=cv, method="predict_proba")[:, 1]
        params = {f"model__{k}": v for k, v in chosen.params.items()}
        pipeline = model.build(chosen.family, spec, seed).set_params(**params).fit(x, y)
        base = model.baseline(spec).fit(x, y)
    return Trained(
        pipeline=pipeline,
        baseline=base,
        best_params=chosen.params,
        threshold=threshold,
        cv={
            "roc_auc": chosen.roc_auc,
            "f1": float(f1_score(tune_y, chosen.oof >= threshold)),
            "baseline_roc_auc": float(roc_auc_score(tune_y, base_oof)),
        },
        fit_seconds=time.perf_counter() - start,
        family=chosen.family,
        candidates={t.family: {"cv_roc_auc": t.roc_auc, "best_params": t.params} for t in tuned},
        warnings=model.ignored_constraints(chosen.family, spec),
    )
