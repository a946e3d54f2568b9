"""Fast scoring and exact explanations of the trained pipeline, on NumPy arrays in spec order.

The pipeline's `prepare` step maps each feature to one column in spec order (categories to their index in the
spec, missing values to the imputer's statistic), so a request decoded straight to that encoding can skip the
DataFrame, ColumnTransformer and sklearn's per-call input validation. Tests hold this path equal, bit for bit,
to `pipeline.predict_proba`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import factorial
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.ensemble._gradient_boosting import predict_stages
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from contract.spec import DatasetSpec


def _imputer(step: Any) -> SimpleImputer | None:
    if isinstance(step, SimpleImputer):
        return step
    if isinstance(step, Pipeline):
        return next((s for _, s in step.steps if isinstance(s, SimpleImputer)), None)
    return None


@dataclass(frozen=True)
class Scorer:
    gbm: GradientBoostingClassifier
    fill: np.ndarray
    """Per feature, the encoded value that replaces a missing one (NaN where the feature is not nullable)."""
    init_raw: float
    """The ensemble's constant starting score (log-odds of the training prior)."""

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, spec: DatasetSpec) -> Scorer:
        prepare, gbm = pipeline.named_steps["prepare"], pipeline.named_steps["model"]
        if not isinstance(gbm, GradientBoostingClassifier) or gbm.n_trees_per_iteration_ != 1:
            raise TypeError("the fast path serves binary GradientBoostingClassifier pipelines")
        if [t[0] for t in prepare.transformers_ if t[0] != "remainder"] != spec.feature_names:
            raise ValueError("model pipeline columns do not match the spec's features")
        fill = np.full(len(spec.features), np.nan)
        for j, f in enumerate(spec.features):
            imp = _imputer(prepare.named_transformers_[f.name])
            if imp is not None:
                stat = imp.statistics_[0]
                fill[j] = float(stat) if f.is_numeric else float(list(f.values or ()).index(stat))
        init = float(gbm._raw_predict_init(np.zeros((1, len(spec.features)), dtype=np.float32))[0, 0])
        return cls(gbm=gbm, fill=fill, init_raw=init)

    def _ready(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, self.fill, x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Log-odds per row; `x` is (rows, features) float64 in spec order, categories as codes."""
        out = np.full((x.shape[0], 1), self.init_raw, dtype=np.float64)
        predict_stages(self.gbm.estimators_, self._ready(x), self.gbm.learning_rate, out)
        return out

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Churn probability per row, computed exactly as GradientBoostingClassifier.predict_proba does."""
        return np.asarray(self.gbm._loss.predict_proba(self.raw(x))[:, 1])

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Exact path-dependent Shapley values (TreeSHAP's definition) in log-odds: (base, contributions) with
        base + contributions.sum(axis=1) == raw score. Enumerates the subsets of the few features each tree
        splits on, so the cost stays small for shallow trees."""
        xr = self._ready(x).astype(np.float64)
        phi = np.zeros_like(xr)
        base = self.init_raw
        lr = self.gbm.learning_rate
        for est in self.gbm.estimators_[:, 0]:
            b, contrib = _tree_shapley(est.tree_, xr)
            base += lr * b
            phi += lr * contrib
        return base, phi


def _tree_shapley(tree: Any, x: np.ndarray) -> tuple[float, np.ndarray]:
    feats = sorted({int(f) for f in tree.feature if f >= 0})
    m = len(feats)
    values: dict[frozenset[int], np.ndarray] = {}
    for size in range(m + 1):
        for subset in combinations(feats, size):
            values[frozenset(subset)] = _expected(tree, x, frozenset(subset))
    phi = np.zeros_like(x)
    weights = [factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)]
    for i in feats:
        others = [f for f in feats if f != i]
        for size in range(m):
            for subset in combinations(others, size):
                s = frozenset(subset)
                phi[:, i] += weights[size] * (values[s | {i}] - values[s])
    return float(values[frozenset()][0]), phi


def _expected(tree: Any, x: np.ndarray, known: frozenset[int]) -> np.ndarray:
    """E[tree(x) | x_known], unknown features averaged by the training cover of each branch."""
    left, right = tree.children_left, tree.children_right
    feature, threshold = tree.feature, tree.threshold
    cover, value = tree.weighted_n_node_samples, tree.value[:, 0, 0]
    out = np.zeros(x.shape[0])
    stack: list[tuple[int, np.ndarray]] = [(0, np.ones(x.shape[0]))]
    while stack:
        node, w = stack.pop()
        if left[node] < 0:
            out += w * value[node]
            continue
        f, lo, hi = feature[node], left[node], right[node]
        if f in known:
            go_left = x[:, f] <= threshold[node]
            stack.append((lo, w * go_left))
            stack.append((hi, w * ~go_left))
        else:
            stack.append((lo, w * (cover[lo] / cover[node])))
            stack.append((hi, w * (cover[hi] / cover[node])))
    return out
