"""The model pipelines, built from the spec: GradientBoosting for serving, logistic regression as baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from contract.spec import DatasetSpec, Feature


def _encode(f: Feature, *, one_hot: bool) -> Any:
    assert f.values is not None
    if one_hot:
        enc: Any = OneHotEncoder(categories=[list(f.values)], handle_unknown="ignore", sparse_output=False)
    else:
        enc = OrdinalEncoder(categories=[list(f.values)], dtype=np.float64)
    return make_pipeline(SimpleImputer(strategy="most_frequent"), enc) if f.nullable else enc


def prepare(spec: DatasetSpec, *, one_hot: bool = False, scale: bool = False) -> ColumnTransformer:
    """Column step: one transformer per feature, outputs in spec order (the predictor's fast path relies on it)."""
    steps: list[tuple[str, Any, list[str]]] = []
    for f in spec.features:
        if f.is_numeric:
            parts: list[Any] = [SimpleImputer(strategy="median")] if f.nullable else []
            parts += [StandardScaler()] if scale else []
            step: Any = make_pipeline(*parts) if parts else "passthrough"
        else:
            step = _encode(f, one_hot=one_hot)
        steps.append((f.name, step, [f.name]))
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def gbm(spec: DatasetSpec, seed: int) -> Pipeline:
    """The served model: ordinal codes for categories (trees need no one-hot), GradientBoosting on top."""
    return Pipeline([("prepare", prepare(spec)), ("model", GradientBoostingClassifier(random_state=seed))])


def baseline(spec: DatasetSpec) -> Pipeline:
    """Logistic regression on scaled numerics and one-hot categories: the yardstick the GBM must beat."""
    return Pipeline(
        [("prepare", prepare(spec, one_hot=True, scale=True)), ("model", LogisticRegression(max_iter=1000))]
    )
