"""The model pipelines, built from the spec: one per model family (gbm, hgb, logistic), and the logistic baseline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # a scikit-learn dependency

from contract.spec import DatasetSpec, Feature

Family = Literal["logistic", "gbm", "hgb"]
FAMILIES: tuple[Family, ...] = get_args(Family)
"""Simplest first: `auto` breaks near-ties towards the front. Logistic regression is linear (one weight per encoded
column, exact additive explanations); GradientBoosting is a fixed number of shallow trees; HistGradientBoosting adds
binning, leaf-wise growth and (above 10,000 rows) early stopping on top of boosted trees."""

DEFAULT_GRIDS: dict[Family, dict[str, list[Any]]] = {
    "gbm": {"n_estimators": [50, 100], "max_depth": [2, 3], "learning_rate": [0.05, 0.1], "subsample": [0.7]},
    # Small trees first: on a few thousand rows 4-8 leaves beat sklearn's default 31 (OOF ROC AUC 0.955 vs 0.952
    # on the committed data); l2 1.0 steadies the leaf values on small leaves.
    "hgb": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [4, 8, 16], "max_iter": [100], "l2_regularization": [1.0]},
    "logistic": {"C": [0.1, 1.0, 10.0]},
}
"""Each family's parameter grid when CHURN_GRID is not set."""

MAX_NATIVE_CATEGORIES = 255
"""HistGradientBoosting splits natively on categories of at most this many values (its max_bins); with native
categories on, larger ones stay ordinal codes, split like numbers."""


@contextmanager
def one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting fits and predicts with OpenMP threads; on a busy 2-core box two threads made the hgb
    evaluate stage 4.7 s instead of 0.5 s (and a 200k-row fit 100 s instead of 2.6 s, FIELD-NOTES). The grid
    search's worker processes are limited by joblib already; this limits the calling process."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def estimator_class(family: Family) -> type[Any]:
    classes: dict[Family, type[Any]] = {
        "gbm": GradientBoostingClassifier,
        "hgb": HistGradientBoostingClassifier,
        "logistic": LogisticRegression,
    }
    return classes[family]


def _encode(f: Feature, *, one_hot: bool, centre: bool) -> Any:
    assert f.values is not None
    steps: list[Any] = [SimpleImputer(strategy="most_frequent")] if f.nullable else []
    if one_hot:
        steps.append(OneHotEncoder(categories=[list(f.values)], handle_unknown="ignore", sparse_output=False))
        # Centring does not change a logistic model (its intercept absorbs it) but makes every column's training
        # mean 0, so a contribution is simply weight x encoded value (contract/scoring.py).
        steps += [StandardScaler(with_std=False)] if centre else []
    else:
        steps.append(OrdinalEncoder(categories=[list(f.values)], dtype=np.float64))
    return make_pipeline(*steps) if len(steps) > 1 else steps[0]


def prepare(spec: DatasetSpec, *, one_hot: bool = False, scale: bool = False) -> ColumnTransformer:
    """Column step: one transformer per feature, outputs in spec order (the predictor's fast path relies on it).
    `scale`: numerics standardised and one-hot columns centred."""
    steps: list[tuple[str, Any, list[str]]] = []
    for f in spec.features:
        if f.is_numeric:
            parts: list[Any] = [SimpleImputer(strategy="median")] if f.nullable else []
            parts += [StandardScaler()] if scale else []
            step: Any = make_pipeline(*parts) if parts else "passthrough"
        else:
            step = _encode(f, one_hot=one_hot, centre=scale)
        steps.append((f.name, step, [f.name]))
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def monotonic_cst(spec: DatasetSpec) -> list[int]:
    """HistGradientBoosting's `monotonic_cst` in the prepare step's output order (spec order, one column each)."""
    sign = {"increasing": 1, "decreasing": -1, None: 0}
    return [sign[f.monotonic] for f in spec.features]


def gbm(spec: DatasetSpec, seed: int) -> Pipeline:
    """Ordinal codes for categories (trees need no one-hot), GradientBoosting on top. It takes no monotonic
    constraints (sklearn has no monotonic_cst for GradientBoostingClassifier)."""
    return Pipeline([("prepare", prepare(spec)), ("model", GradientBoostingClassifier(random_state=seed))])


def hgb(spec: DatasetSpec, seed: int, *, native_categories: bool = False) -> Pipeline:
    """Ordinal codes split like numbers, as for gbm, and the spec's monotonic constraints.

    Native categorical splits (`native_categories`) put no order on e.g. payment methods, but the fitted model then
    holds a functools.partial (inside its own ColumnTransformer), a type skops refuses and the registry does not
    vouch for; on the committed data both score the same out of fold. The predictor's scorer serves both."""
    categorical = [not f.is_numeric and len(f.values or ()) <= MAX_NATIVE_CATEGORIES for f in spec.features]
    clf = HistGradientBoostingClassifier(
        random_state=seed,
        categorical_features=categorical if native_categories and any(categorical) else None,
        monotonic_cst=monotonic_cst(spec) if any(f.monotonic for f in spec.features) else None,
    )
    return Pipeline([("prepare", prepare(spec)), ("model", clf)])


def logistic(spec: DatasetSpec, seed: int) -> Pipeline:
    """Logistic regression on scaled numerics and centred one-hot categories."""
    clf = LogisticRegression(max_iter=1000, random_state=seed)
    return Pipeline([("prepare", prepare(spec, one_hot=True, scale=True)), ("model", clf)])


def build(family: Family, spec: DatasetSpec, seed: int) -> Pipeline:
    builders = {"gbm": gbm, "hgb": hgb, "logistic": logistic}
    return builders[family](spec, seed)


def baseline(spec: DatasetSpec) -> Pipeline:
    """The yardstick every candidate is measured against: the logistic pipeline, untuned (C=1)."""
    return logistic(spec, seed=0)


def ignored_constraints(family: Family, spec: DatasetSpec) -> list[str]:
    """Warnings for the spec's monotonic constraints a family cannot honour (empty when it honours them all)."""
    wanted = [f"{f.name}: {f.monotonic}" for f in spec.features if f.monotonic]
    if not wanted or family == "hgb":
        return []
    why = {
        "gbm": "sklearn's GradientBoostingClassifier takes no monotonic constraints",
        "logistic": "logistic regression here cannot constrain the sign of a weight",
    }[family]
    return [
        f"the {family} family ignores the spec's monotonic constraints ({', '.join(wanted)}): {why}; "
        "CHURN_MODEL_FAMILY=hgb honours them"
    ]


IMPORTANCE_METHODS: dict[Family, str] = {
    "gbm": "impurity decrease (GradientBoosting feature_importances_)",
    "hgb": "permutation importance on the test rows (ROC AUC drop, 5 repeats)",
    "logistic": "|weight| summed over each feature's encoded columns (numerics standardised, categories one-hot)",
}


def importances(pipeline: Pipeline, spec: DatasetSpec, x: pd.DataFrame, y: np.ndarray, seed: int) -> dict[str, float]:
    """Per feature, a non-negative share summing to 1 (see IMPORTANCE_METHODS). `x`, `y`: held-out rows, used by
    the permutation importance of hgb (HistGradientBoosting has no impurity importance; a mean |Shapley value|
    would need the predictor's TreeSHAP, which the training image does not ship)."""
    clf = pipeline.named_steps["model"]
    if isinstance(clf, GradientBoostingClassifier):
        raw = np.asarray(clf.feature_importances_, dtype=float)
    elif isinstance(clf, LogisticRegression):
        prepare = pipeline.named_steps["prepare"]
        weights = np.abs(clf.coef_[0])
        raw = np.array([weights[prepare.output_indices_[f.name]].sum() for f in spec.features])
    else:
        with one_openmp_thread():
            result = permutation_importance(pipeline, x, y, scoring="roc_auc", n_repeats=5, random_state=seed)
        raw = np.clip(result.importances_mean, 0, None)  # a feature whose shuffling helps by chance counts as 0
    total = raw.sum()
    shares = raw / total if total > 0 else np.full(len(raw), 1 / len(raw))
    return dict(zip(spec.feature_names, map(float, shares), strict=True))
