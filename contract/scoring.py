"""Scoring and exact explanations of the trained pipeline, on NumPy arrays in spec order, for each model family.

The pipeline's `prepare` step maps each feature to its columns in spec order (for the tree families one column:
categories to their index in the spec, missing values to the imputer's statistic; for logistic regression the scaled
value or the centred one-hot columns), so a request decoded straight to that encoding can skip the DataFrame,
ColumnTransformer and most of sklearn's per-call input validation. Tests hold every family's path equal, bit for
bit, to `pipeline.predict_proba`, and the champion loader checks it again on the logged presets.

The GBM (the default family) and logistic regression are also logged as a scorer file, their trees or weights as
arrays (`Scorer.to_file`), which the predictor serves without importing scikit-learn (bench/README.md:
scikit-learn and SciPy's statistics cost a serving process ~85 MB and ~2 s of start-up). Training writes it,
hence this module lives in the contract package; scikit-learn is imported only where a fitted pipeline is read.

Explanations are in log-odds, base + contributions.sum(axis=1) == raw score:
- gbm: exact path-dependent Shapley values (TreeSHAP's definition) by enumerating each tree's split features;
- hgb: the same definition, computed leaf by leaf with a polynomial per root-to-leaf path (its trees can split on
  many features, too many to enumerate);
- logistic: weight x (encoded value - training mean of the encoded column), which is exact for a linear model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import combinations
from math import factorial
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from contract.spec import DatasetSpec

if TYPE_CHECKING:  # scikit-learn is imported only where a pipeline is handled (training, the fallback loader)
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

FILE_FORMAT = 1
"""Version of the scorer file (`Scorer.to_file`); a predictor refuses a file of another format."""


def _imputer(step: Any) -> SimpleImputer | None:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if isinstance(step, SimpleImputer):
        return step
    if isinstance(step, Pipeline):
        return next((s for _, s in step.steps if isinstance(s, SimpleImputer)), None)
    return None


def _fills(prepare: Any, spec: DatasetSpec) -> np.ndarray:
    """Per feature, the encoded value that replaces a missing one (NaN where the feature is not nullable)."""
    fill = np.full(len(spec.features), np.nan)
    for j, f in enumerate(spec.features):
        imp = _imputer(prepare.named_transformers_[f.name])
        if imp is not None:
            stat = imp.statistics_[0]
            fill[j] = float(stat) if f.is_numeric else float(list(f.values or ()).index(stat))
    return fill


def _listed_fill(fill: np.ndarray) -> list[float | None]:
    """The fills for JSON (null where a feature is not nullable)."""
    return [None if np.isnan(v) else float(v) for v in fill]


def _read_fill(listed: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in listed], dtype=np.float64)


def _filled(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    missing = np.isnan(x)
    return np.where(missing, fill, x) if missing.any() else x


class Scorer(ABC):
    """Churn probability and explanations of rows decoded to (rows, features) float64 in spec order (categories as
    their index in the spec, NaN for missing)."""

    @staticmethod
    def from_pipeline(pipeline: Pipeline, spec: DatasetSpec) -> Scorer:
        """The scorer of the pipeline's model family (gbm, hgb or logistic)."""
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        prepare, clf = pipeline.named_steps["prepare"], pipeline.named_steps["model"]
        if [t[0] for t in prepare.transformers_ if t[0] != "remainder"] != spec.feature_names:
            raise ValueError("model pipeline columns do not match the spec's features")
        if isinstance(clf, GradientBoostingClassifier):
            return GbmScorer.build(clf, prepare, spec)
        if isinstance(clf, HistGradientBoostingClassifier):
            return HgbScorer.build(clf, prepare, spec)
        if isinstance(clf, LogisticRegression):
            return LogisticScorer.build(clf, prepare, spec)
        raise TypeError(f"no scorer for {type(clf).__name__} pipelines (gbm, hgb and logistic are served)")

    @staticmethod
    def from_file(data: dict[str, Any]) -> Scorer:
        """The scorer a scorer file describes (`to_file`): plain arrays, no scikit-learn needed to serve them."""
        readers: dict[str, Any] = {"gbm": GbmScorer.from_file, "logistic": LogisticScorer.from_file}
        if data.get("format") != FILE_FORMAT or data.get("family") not in readers:
            raise ValueError(
                f"scorer file of format {data.get('format')!r}, family {data.get('family')!r}: this predictor "
                f"reads format {FILE_FORMAT}, families {sorted(readers)}"
            )
        scorer: Scorer = readers[data["family"]](data)
        return scorer

    def to_file(self) -> dict[str, Any] | None:
        """The scorer as JSON-ready arrays, for serving without the pipeline; None for a family served from its
        pipeline (hgb)."""
        return None

    @abstractmethod
    def proba(self, x: np.ndarray) -> np.ndarray:
        """Churn probability per row, equal bit for bit to the pipeline's predict_proba(...)[:, 1]."""

    @abstractmethod
    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(base, contributions) in log-odds, one contribution per feature and row, base + sum == raw score."""


@dataclass(frozen=True)
class Trees:
    """A tree ensemble as arrays: scikit-learn's `tree_` fields, trees concatenated (child indices local to their
    tree, -1 at a leaf); `value` is what a leaf adds to the score (the learning rate applied)."""

    offset: np.ndarray
    """(trees + 1,) index of each tree's first node."""
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    cover: np.ndarray
    """Training weight reaching each node (TreeSHAP averages unknown features by it)."""

    FIELDS = ("offset", "left", "right", "feature", "threshold", "value", "cover")

    def tree(self, i: int) -> Trees:
        """Tree i alone."""
        a, b = int(self.offset[i]), int(self.offset[i + 1])
        return Trees(np.array([0, b - a]), *(getattr(self, k)[a:b] for k in self.FIELDS[1:]))

    def depth(self) -> int:
        """The deepest leaf's depth over all trees."""
        deepest = 0
        for i in range(len(self.offset) - 1):
            t, stack = self.tree(i), [(0, 0)]
            while stack:
                node, d = stack.pop()
                deepest = max(deepest, d)
                if t.left[node] >= 0:
                    stack += [(int(t.left[node]), d + 1), (int(t.right[node]), d + 1)]
        return deepest


@dataclass(frozen=True)
class _Heap:
    """The ensemble padded to complete trees of one depth, for walking every (tree, row) pair at once: node k of
    level d has children 2k + 1 and 2k + 2; a leaf above the last level becomes splits that always go left, and
    its value fills the leaves below it. Splits are deduplicated: each distinct (feature, threshold) is compared
    once per row, and a node reads its split's row of results."""

    depth: int
    feature: np.ndarray
    """(splits,) feature of each distinct split."""
    threshold: np.ndarray
    """(splits,) float32: the largest float32 not above the split's threshold, so that for float32 inputs
    `x <= threshold32` is scikit-learn's `x <= threshold` (a float64 comparison)."""
    split: np.ndarray
    """(internal nodes x trees,) node-major (heap node k of tree t at k * trees + t): the node's distinct split."""
    leaf: np.ndarray
    """(trees x 2^depth,) what each leaf adds to the score."""
    by_turns: np.ndarray | None = None
    """Trees of depth <= 3 (at most 7 splits, the default grids' depths): (trees x 2^splits,) each tree's leaf value
    for every combination of its splits' outcomes (bit k: heap node k goes right), so a walk is one lookup."""
    starts: np.ndarray | None = None
    """(trees, 1) where each tree's row of `by_turns` starts in it flattened: int16 when that fits (the sum with
    the outcome bytes is then 2 bytes an entry, not 8)."""

    @classmethod
    def of(cls, trees: Trees, depth: int) -> _Heap:
        n_trees, inner = len(trees.offset) - 1, 2**depth - 1
        feature = np.zeros((inner, n_trees), dtype=np.intp)
        threshold = np.full((inner, n_trees), np.inf)
        leaf = np.zeros((n_trees, 2**depth))
        for t in range(n_trees):
            tree, stack = trees.tree(t), [(0, 0, 0)]  # (node, heap index, level)
            while stack:
                node, k, d = stack.pop()
                if tree.left[node] >= 0:
                    feature[k, t], threshold[k, t] = tree.feature[node], tree.threshold[node]
                    stack += [(int(tree.left[node]), 2 * k + 1, d + 1), (int(tree.right[node]), 2 * k + 2, d + 1)]
                    continue
                first = (k + 1) * 2 ** (depth - d) - 1  # its leftmost descendant on the last level
                leaf[t, first - inner : first - inner + 2 ** (depth - d)] = tree.value[node]
        t32 = _float32_below(threshold)
        keys = np.stack([feature.reshape(-1), t32.reshape(-1).view(np.int32).astype(np.intp)])
        distinct, split = np.unique(keys, axis=1, return_inverse=True)
        by_turns = starts = None
        if depth <= MAX_LOOKUP_DEPTH:
            outcomes = np.arange(2**inner)  # bit k: heap node k goes right
            at = np.zeros_like(outcomes)
            for _ in range(depth):
                at = 2 * at + 1 + ((outcomes >> at) & 1)
            by_turns = leaf[:, at - inner]
            starts = np.arange(0, by_turns.size, by_turns.shape[1])[:, None]
            if by_turns.size <= np.iinfo(np.int16).max:
                starts = starts.astype(np.int16)
        t32 = distinct[1].astype(np.int32).view(np.float32)
        return cls(depth, distinct[0], t32, split.reshape(-1), leaf, by_turns, starts)

    def walk(self, xt: np.ndarray) -> np.ndarray:
        """(trees, rows) leaf values for rows `xt` given as (features, rows) float32."""
        n_trees, rows = self.leaf.shape[0], xt.shape[1]
        right = xt[self.feature] > self.threshold[:, None]  # (splits, rows): does the row go right?
        if self.by_turns is not None:  # every node's outcome as one bit of a byte per (tree, row), then one lookup
            planes = right[self.split].reshape(-1, n_trees, rows).view(np.uint8)
            turns = planes[0].copy()
            for k in range(1, len(planes)):
                turns |= planes[k] << k
            looked: np.ndarray = self.by_turns.reshape(-1).take(turns + self.starts)
            return looked
        went: list[np.ndarray] = []  # per level passed, (trees, rows): went right there
        for d in range(self.depth):
            here = right[self.split[(2**d - 1) * n_trees : (2 ** (d + 1) - 1) * n_trees]].reshape(-1, n_trees, rows)
            for bit in reversed(went):  # pick each (tree, row)'s node of this level, one earlier turn at a time
                here = (here[0::2] & ~bit) | (here[1::2] & bit)
            went.append(here[0])
        index = np.zeros((n_trees, rows), dtype=np.intp)
        for bit in went:
            index <<= 1
            index |= bit
        index += np.arange(0, self.leaf.size, self.leaf.shape[1])[:, None]
        leaves: np.ndarray = self.leaf.reshape(-1)[index]
        return leaves


@dataclass(frozen=True)
class _Nodes:
    """Deeper trees, walked node by node: every (tree, row) pair steps down one level per round (NumPy gathers;
    slower than the heap walk but of any depth)."""

    depth: int
    root: np.ndarray
    """(trees,) global index of each tree's root."""
    left: np.ndarray
    """(nodes,) global child indices; a leaf points at itself."""
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    """(nodes,) float32, rounded down as in `_Heap`."""
    value: np.ndarray

    @classmethod
    def of(cls, trees: Trees, depth: int) -> _Nodes:
        first = np.repeat(trees.offset[:-1], np.diff(trees.offset))
        own = np.arange(len(trees.left))
        leaf = trees.left < 0
        left = np.where(leaf, own, trees.left + first)
        right = np.where(leaf, own, trees.right + first)
        return cls(
            depth,
            trees.offset[:-1],
            left,
            right,
            np.where(leaf, 0, trees.feature),
            _float32_below(trees.threshold),
            trees.value,
        )

    def walk(self, xt: np.ndarray) -> np.ndarray:
        rows = np.arange(xt.shape[1])
        node = np.repeat(self.root[:, None], xt.shape[1], axis=1)
        for _ in range(self.depth):
            right = xt[self.feature[node], rows] > self.threshold[node]
            node = np.where(right, self.right[node], self.left[node])
        leaves: np.ndarray = self.value[node]
        return leaves


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each threshold: for a float32 x, `x <= t32` is `x <= threshold` in float64."""
    with np.errstate(over="ignore"):
        t32 = threshold.astype(np.float32)
    return np.where(t32.astype(np.float64) > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)


MAX_LOOKUP_DEPTH = 3
"""Deepest trees walked by one lookup of all their splits' outcomes (2^7 values a tree at depth 3)."""
MAX_HEAP_DEPTH = 8
"""Deepest trees walked as complete heaps (2^depth nodes a tree); deeper ones are walked node by node."""
_WALK_ROWS = 1024
"""Rows walked at once (bounds the (nodes x trees x rows) comparison matrix)."""


@dataclass(frozen=True)
class GbmScorer(Scorer):
    """GradientBoosting from its trees as arrays: all trees walked at once in NumPy on the float32 codes, leaves
    added in tree order as scikit-learn's `predict_stages` adds them (so the score is the same bit for bit), and
    TreeSHAP by subset enumeration."""

    trees: Trees
    fill: np.ndarray
    """Per feature, the encoded value that replaces a missing one (NaN where the feature is not nullable)."""
    init_raw: float
    """The ensemble's constant starting score (log-odds of the training prior)."""
    walker: _Heap | _Nodes = field(init=False, repr=False, compare=False)

    _start: np.ndarray = field(init=False, repr=False, compare=False)
    """[[init_raw]]: the start score as the first row of a single row's leaves."""

    def __post_init__(self) -> None:
        depth = self.trees.depth()
        walker = _Heap.of(self.trees, depth) if depth <= MAX_HEAP_DEPTH else _Nodes.of(self.trees, depth)
        object.__setattr__(self, "walker", walker)
        object.__setattr__(self, "_start", np.array([[self.init_raw]]))

    @classmethod
    def build(cls, gbm: GradientBoostingClassifier, prepare: Any, spec: DatasetSpec) -> GbmScorer:
        if gbm.n_trees_per_iteration_ != 1:
            raise TypeError("the fast path serves binary GradientBoostingClassifier pipelines")
        from sklearn._loss.loss import HalfBinomialLoss

        if not isinstance(gbm._loss, HalfBinomialLoss):
            raise TypeError(f"the gbm scorer serves the log-loss GBM, not {type(gbm._loss).__name__}")
        init = float(gbm._raw_predict_init(np.zeros((1, len(spec.features)), dtype=np.float32))[0, 0])
        parts = [e.tree_ for e in gbm.estimators_[:, 0]]
        sizes = [t.node_count for t in parts]
        trees = Trees(
            offset=np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp),
            left=np.concatenate([t.children_left for t in parts]).astype(np.intp),
            right=np.concatenate([t.children_right for t in parts]).astype(np.intp),
            feature=np.concatenate([t.feature for t in parts]).astype(np.intp),
            threshold=np.concatenate([t.threshold for t in parts]),
            value=np.concatenate([gbm.learning_rate * t.value[:, 0, 0] for t in parts]),
            cover=np.concatenate([t.weighted_n_node_samples for t in parts]),
        )
        return cls(trees=trees, fill=_fills(prepare, spec), init_raw=init)

    def to_file(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "family": "gbm",
            "init_raw": self.init_raw,
            "fill": _listed_fill(self.fill),
            **{k: getattr(self.trees, k).tolist() for k in Trees.FIELDS},
        }

    @classmethod
    def from_file(cls, data: dict[str, Any]) -> GbmScorer:
        ints, floats = ("offset", "left", "right", "feature"), ("threshold", "value", "cover")
        arrays = {k: np.asarray(data[k], dtype=np.intp) for k in ints}
        arrays |= {k: np.asarray(data[k], dtype=np.float64) for k in floats}
        return cls(trees=Trees(**arrays), fill=_read_fill(data["fill"]), init_raw=float(data["init_raw"]))

    def _ready(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        if np.count_nonzero(missing):
            x = np.where(missing, self.fill, x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Log-odds per row; `x` is (rows, features) float64 in spec order, categories as codes."""
        xt = np.ascontiguousarray(self._ready(x).T)
        out = np.empty(x.shape[0])
        for start in range(0, x.shape[0], _WALK_ROWS):
            leaves = self.walker.walk(xt[:, start : start + _WALK_ROWS])
            if leaves.shape[1] == 1:  # NumPy adds a single column pairwise: accumulate adds it tree by tree
                out[start] = np.add.accumulate(np.concatenate((self._start, leaves)), axis=0)[-1, 0]
            else:  # each row's column added tree by tree from the start score, as predict_stages adds them
                out[start : start + _WALK_ROWS] = np.add.reduce(leaves, axis=0, initial=self.init_raw)
        return out[:, None]

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Churn probability per row, as GradientBoostingClassifier.predict_proba computes it (expit of the score)."""
        return np.asarray(expit(self.raw(x)[:, 0]))

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Exact path-dependent Shapley values (TreeSHAP's definition) in log-odds: (base, contributions) with
        base + contributions.sum(axis=1) == raw score. Enumerates the subsets of the few features each tree
        splits on, so the cost stays small for shallow trees."""
        xr = self._ready(x).astype(np.float64)
        phi = np.zeros_like(xr)
        base = self.init_raw
        for i in range(len(self.trees.offset) - 1):
            b, contrib = _tree_shapley(self.trees.tree(i), xr)
            base += b
            phi += contrib
        return base, phi


@dataclass(frozen=True)
class HgbScorer(Scorer):
    """HistGradientBoosting: its trees' own predict on its own input (built here from the codes: no DataFrame, no
    ColumnTransformer, no validation, one thread), summed in its order; TreeSHAP over the same trees.

    With native categories HistGradientBoosting re-encodes them itself (the index among the values seen in training,
    unseen ones missing) and moves them in front of the numerics; `codes` and `columns` replay that."""

    hgb: HistGradientBoostingClassifier
    fill: np.ndarray
    columns: np.ndarray
    """For each column of the trees' input, its feature's index in the spec."""
    codes: dict[int, np.ndarray]
    """Per categorical column of the trees' input: spec code -> the model's own code (NaN: not seen in training)."""
    known: tuple[np.ndarray, np.ndarray]
    """The model's known-category bitsets and feature map, as its predict passes them to each tree."""
    paths: _LeafPaths

    @classmethod
    def build(cls, hgb: HistGradientBoostingClassifier, prepare: Any, spec: DatasetSpec) -> HgbScorer:
        if hgb.n_trees_per_iteration_ != 1:
            raise TypeError("the hgb scorer serves binary HistGradientBoostingClassifier pipelines")
        n = len(spec.features)
        columns, codes = np.arange(n), {}
        if hgb._preprocessor is not None:  # categories first, then the numerics, each in spec order
            cat = np.asarray(hgb.is_categorical_, dtype=bool)
            columns = np.concatenate([np.flatnonzero(cat), np.flatnonzero(~cat)])
            encoder = hgb._preprocessor.named_transformers_["encoder"]
            for k, (j, seen) in enumerate(zip(np.flatnonzero(cat), encoder.categories_, strict=True)):
                table = np.full(len(spec.features[j].values or ()), np.nan)
                for own, value in enumerate(seen.tolist()):
                    if not np.isnan(value):
                        table[int(value)] = float(own)
                codes[k] = table
        known = hgb._bin_mapper.make_known_categories_bitsets()
        return cls(hgb, _fills(prepare, spec), columns, codes, known, _LeafPaths.of_hgb(hgb, n))

    def own_input(self, x: np.ndarray) -> np.ndarray:
        """The array the model's trees see for rows `x` (what its predict makes of the prepare step's output)."""
        x = _filled(x, self.fill)[:, self.columns]
        for k, table in self.codes.items():
            x[:, k] = table[x[:, k].astype(np.intp)]
        return np.ascontiguousarray(x, dtype=np.float64)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Log-odds per row, summed tree by tree as HistGradientBoostingClassifier._raw_predict does."""
        own = self.own_input(x)
        out = np.zeros((own.shape[0], 1), dtype=self.hgb._baseline_prediction.dtype, order="F")
        out += self.hgb._baseline_prediction
        for (tree,) in self.hgb._predictors:
            out[:, 0] += tree.predict(own, *self.known, 1)
        return out

    def proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.hgb._loss.predict_proba(self.raw(x))[:, 1])

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Exact path-dependent Shapley values in log-odds (the definition the GBM's enumeration computes), in spec
        order."""
        base, phi = self.paths.shapley(self.own_input(x))
        out = np.empty_like(phi)
        out[:, self.columns] = phi
        return base, out


@dataclass(frozen=True)
class _Column:
    """How one feature becomes its encoded columns `out` of the logistic model's input."""

    out: slice
    mean: np.ndarray
    """Subtracted from the encoded value(s): the StandardScaler's training mean."""
    scale: np.ndarray | None
    """Divides the centred numeric value (None: one-hot columns, centred only)."""
    positions: np.ndarray | None
    """One-hot: for each spec value (by code), its column within `out`; None for numerics."""


@dataclass(frozen=True)
class LogisticScorer(Scorer):
    """Logistic regression: the encoding rebuilt with the fitted scalers' own numbers, then the model's own
    predict_proba. Every encoded column is centred on its training mean, so weight x encoded value is a feature's
    exact contribution and the base value is the intercept."""

    coef: np.ndarray
    """(1, encoded columns) the model's weights."""
    intercept: np.ndarray
    """(1,) the model's intercept."""
    fill: np.ndarray
    columns: tuple[_Column, ...]
    width: int

    @classmethod
    def build(cls, lr: LogisticRegression, prepare: Any, spec: DatasetSpec) -> LogisticScorer:
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if lr.coef_.shape[0] != 1:
            raise TypeError("the logistic scorer serves binary LogisticRegression pipelines")
        columns = []
        for f in spec.features:
            step = prepare.named_transformers_[f.name]
            steps = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
            scaler = steps[-1]
            if not isinstance(scaler, StandardScaler) or not scaler.with_mean:
                raise TypeError(f"logistic pipeline: feature {f.name!r} is not centred by a StandardScaler")
            out = prepare.output_indices_[f.name]
            if f.is_numeric:
                scale = np.asarray(scaler.scale_) if scaler.with_std else None
                columns.append(_Column(out, np.asarray(scaler.mean_), scale, None))
                continue
            enc = next((s for s in steps if isinstance(s, OneHotEncoder)), None)
            if enc is None or scaler.with_std:
                raise TypeError(f"logistic pipeline: category {f.name!r} is not one-hot encoded and centred")
            known = list(enc.categories_[0])
            positions = np.array([known.index(v) for v in f.values or ()], dtype=np.intp)
            columns.append(_Column(out, np.asarray(scaler.mean_), None, positions))
        width = max(c.out.stop for c in columns)
        coef, intercept = np.array(lr.coef_, dtype=np.float64), np.array(lr.intercept_, dtype=np.float64)
        return cls(coef=coef, intercept=intercept, fill=_fills(prepare, spec), columns=tuple(columns), width=width)

    def to_file(self) -> dict[str, Any]:
        def listed(a: np.ndarray | None) -> list[Any] | None:
            return None if a is None else a.tolist()

        columns = [
            {"start": c.out.start, "stop": c.out.stop, "mean": listed(c.mean), "scale": listed(c.scale),
             "positions": listed(c.positions)}
            for c in self.columns
        ]  # fmt: skip
        return {
            "format": FILE_FORMAT,
            "family": "logistic",
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "fill": _listed_fill(self.fill),
            "columns": columns,
        }

    @classmethod
    def from_file(cls, data: dict[str, Any]) -> LogisticScorer:
        def array(v: list[Any] | None, dtype: Any = np.float64) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=dtype)

        columns = tuple(
            _Column(slice(c["start"], c["stop"]), np.asarray(c["mean"], dtype=np.float64), array(c["scale"]),
                    array(c["positions"], np.intp))
            for c in data["columns"]
        )  # fmt: skip
        return cls(
            coef=np.asarray(data["coef"], dtype=np.float64).reshape(1, -1),
            intercept=np.asarray(data["intercept"], dtype=np.float64).reshape(1),
            fill=_read_fill(data["fill"]),
            columns=columns,
            width=max(c.out.stop for c in columns),
        )

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The array the prepare step makes from the same rows (same operations, in the same order)."""
        x = _filled(x, self.fill)
        enc = np.empty((x.shape[0], self.width), dtype=np.float64)
        for j, col in enumerate(self.columns):
            if col.positions is None:
                v = x[:, j : j + 1] - col.mean
                enc[:, col.out] = v / col.scale if col.scale is not None else v
            else:
                hot = np.zeros((x.shape[0], col.out.stop - col.out.start))
                hot[np.arange(x.shape[0]), col.positions[x[:, j].astype(np.intp)]] = 1.0
                enc[:, col.out] = hot - col.mean
        return enc

    def proba(self, x: np.ndarray) -> np.ndarray:
        """As LogisticRegression.predict_proba computes it: expit(X @ coef.T + intercept)."""
        return np.asarray(expit((self.encode(x) @ self.coef.T + self.intercept).reshape(-1)))

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Contribution of a feature: the sum over its columns of weight x (encoded - training mean), the mean
        being 0 after centring; the base is the intercept (the score of the average training row)."""
        weighted = self.encode(x) * self.coef[0]
        phi = np.stack([weighted[:, c.out].sum(axis=1) for c in self.columns], axis=1)
        return float(self.intercept[0]), phi


def _tree_shapley(tree: Trees, x: np.ndarray) -> tuple[float, np.ndarray]:
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


def _expected(tree: Trees, x: np.ndarray, known: frozenset[int]) -> np.ndarray:
    """E[tree(x) | x_known], unknown features averaged by the training cover of each branch."""
    left, right, feature, threshold = tree.left, tree.right, tree.feature, tree.threshold
    cover, value = tree.cover, tree.value
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


_CHUNK = 1 << 22
"""Largest intermediate array (elements) of the leaf-path Shapley computation; rows are processed in chunks."""


@dataclass(frozen=True)
class _PathGroup:
    """The leaves whose root-to-leaf path splits on exactly `d` distinct features."""

    value: np.ndarray
    """(L,) leaf values."""
    feature: np.ndarray
    """(L, d) the distinct features of each path."""
    zero: np.ndarray
    """(L, d) per path feature: the share of training rows that follow the path's edges on it (cover ratios)."""
    edges: np.ndarray
    """(L, d, E) per path feature: the edge columns whose conditions a row must meet to follow the path on it
    (padded with the always-true column)."""
    weights: np.ndarray
    """(d,) Shapley weights s! (d - 1 - s)! / d! by coalition size s."""
    scatter: np.ndarray
    """(L * d, features) one-hot map of path features to features."""


@dataclass(frozen=True)
class _LeafPaths:
    """Path-dependent TreeSHAP: for a leaf of value v whose path splits on distinct features P (|P| = d), with
    z_j the training share that follows the path on feature j and o_j(x) in {0, 1} whether x does,
    E[f(x) | x_S] = v * prod_{j in S} o_j * prod_{j in P - S} z_j. Feature i in P then gets
    v * (o_i - z_i) * sum_s w_d(s) c_s, c_s being the t^s coefficient of prod_{j in P - i} (z_j + o_j t).
    Computed for every leaf at once with NumPy; the tests hold it equal to subset enumeration."""

    base: float
    n_features: int
    split_feature: np.ndarray
    """(G,) feature of each split node of every tree."""
    threshold: np.ndarray
    """(G,) numeric splits: x <= threshold goes left."""
    missing_left: np.ndarray
    """(G,) where a missing (or, for categories, unknown) value goes."""
    categorical: np.ndarray
    """(G,) bool: a categorical split (its direction is looked up in `category_left`)."""
    category_left: np.ndarray
    """(categorical splits, 256) bool: the direction of each code 0..255."""
    groups: tuple[_PathGroup, ...]

    @classmethod
    def of_hgb(cls, hgb: HistGradientBoostingClassifier, n_features: int) -> _LeafPaths:
        known, f_idx_map = hgb._bin_mapper.make_known_categories_bitsets()
        codes = np.arange(256)

        def members(bitset: np.ndarray) -> np.ndarray:
            return ((bitset[codes // 32] >> (codes % 32)) & 1).astype(bool)

        split_feature: list[int] = []
        threshold: list[float] = []
        missing_left: list[bool] = []
        categorical: list[bool] = []
        category_left: list[np.ndarray] = []
        leaves: list[tuple[float, list[tuple[int, int, float]]]] = []  # (value, [(feature, edge, cover ratio)])
        base = float(hgb._baseline_prediction[0, 0])
        for (tree,) in hgb._predictors:
            nodes = tree.nodes
            split: dict[int, int] = {}  # node -> global split index
            for node in np.flatnonzero(nodes["is_leaf"] == 0).tolist():
                split[node] = len(split_feature)
                f, mgl = int(nodes["feature_idx"][node]), bool(nodes["missing_go_to_left"][node])
                split_feature.append(f)
                threshold.append(float(nodes["num_threshold"][node]))
                missing_left.append(mgl)
                categorical.append(bool(nodes["is_categorical"][node]))
                if categorical[-1]:  # left if in the left set, right if a known category, else as a missing value
                    left = members(tree.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
                    seen = members(known[f_idx_map[f]])
                    category_left.append(np.where(left, True, np.where(seen, False, mgl)))
            stack: list[tuple[int, list[tuple[int, int, float]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                if nodes["is_leaf"][node]:
                    leaves.append((float(nodes["value"][node]), path))
                    continue
                g, f, count = split[node], int(nodes["feature_idx"][node]), float(nodes["count"][node])
                for edge, child in ((2 * g, int(nodes["left"][node])), (2 * g + 1, int(nodes["right"][node]))):
                    stack.append((child, [*path, (f, edge, float(nodes["count"][child]) / count)]))
        groups, expected = _group_leaves(leaves, n_features, always=2 * len(split_feature))
        return cls(
            base=base + expected,
            n_features=n_features,
            split_feature=np.array(split_feature, dtype=np.intp),
            threshold=np.array(threshold, dtype=np.float64),
            missing_left=np.array(missing_left, dtype=bool),
            categorical=np.array(categorical, dtype=bool),
            category_left=np.array(category_left, dtype=bool).reshape(len(category_left), 256),
            groups=groups,
        )

    def _edge_truth(self, x: np.ndarray) -> np.ndarray:
        """(rows, 2 G + 1): for split g, column 2g is "goes left", 2g + 1 "goes right"; the last is always true,
        routed as HistGradientBoosting's predictor routes (missing, then categories, then x <= threshold)."""
        v = x[:, self.split_feature]
        left = v <= self.threshold
        if self.categorical.any():
            cats = v[:, self.categorical]
            code = np.where(np.isnan(cats) | (cats < 0) | (cats > 255), 0, cats).astype(np.intp)
            routed = self.category_left[np.arange(code.shape[1]), code]
            bad = np.isnan(cats) | (cats < 0) | (cats > 255)
            left[:, self.categorical] = np.where(bad, self.missing_left[self.categorical], routed)
        left = np.where(np.isnan(v), self.missing_left, left)
        truth = np.empty((x.shape[0], 2 * left.shape[1] + 1), dtype=bool)
        truth[:, 0:-1:2], truth[:, 1:-1:2], truth[:, -1] = left, ~left, True
        return truth

    def shapley(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        phi = np.zeros((x.shape[0], self.n_features))
        for group in self.groups:
            n_leaves, d = group.feature.shape
            step = max(1, _CHUNK // (n_leaves * d * max(d, group.edges.shape[2])))
            eye = np.eye(d, dtype=bool)
            zero_i = np.where(eye, 1.0, group.zero[:, None, :])  # (L, i, j): the factors of prod_{j != i}
            for start in range(0, x.shape[0], step):
                rows: np.ndarray = x[start : start + step]
                one = np.all(self._edge_truth(rows)[:, group.edges], axis=3).astype(np.float64)  # (R, L, d)
                one_i = np.where(eye, 0.0, one[:, :, None, :])  # (R, L, i, j)
                coef = np.zeros((len(rows), n_leaves, d, d))
                coef[..., 0] = 1.0
                for j in range(d):  # multiply in (z_j + o_j t), one path feature at a time
                    shifted = np.zeros_like(coef)
                    shifted[..., 1:] = coef[..., :-1]
                    coef = coef * zero_i[None, :, :, j, None] + shifted * one_i[..., j, None]
                contrib = group.value[:, None] * (one - group.zero) * (coef @ group.weights)  # (R, L, d)
                phi[start : start + step] += contrib.reshape(len(rows), -1) @ group.scatter
        return self.base, phi


def _group_leaves(
    leaves: list[tuple[float, list[tuple[int, int, float]]]], n_features: int, *, always: int
) -> tuple[tuple[_PathGroup, ...], float]:
    """Leaves (value, path of (feature, edge column, cover ratio)) grouped by their number of distinct path
    features, and the trees' expected value sum(v * cover share) (the base value without the trees' start)."""
    by_d: dict[int, list[tuple[float, list[int], list[float], list[list[int]]]]] = {}
    expected = 0.0
    for value, path in leaves:
        zero: dict[int, float] = {}
        edges: dict[int, list[int]] = {}
        for f, edge, ratio in path:  # a feature split on twice: ratios multiply, conditions all hold
            zero[f] = zero.get(f, 1.0) * ratio
            edges.setdefault(f, []).append(edge)
        feats = sorted(zero)
        if not feats:  # a tree that is a single leaf
            expected += value
            continue
        by_d.setdefault(len(feats), []).append((value, feats, [zero[f] for f in feats], [edges[f] for f in feats]))
    groups = []
    for d, rows in sorted(by_d.items()):
        width = max(len(e) for row in rows for e in row[3])
        edge_arr = np.full((len(rows), d, width), always, dtype=np.intp)
        for i, row in enumerate(rows):
            for k, e in enumerate(row[3]):
                edge_arr[i, k, : len(e)] = e
        values = np.array([row[0] for row in rows])
        feature = np.array([row[1] for row in rows], dtype=np.intp)
        zero_arr = np.array([row[2] for row in rows])
        expected += float((values * zero_arr.prod(axis=1)).sum())
        weights = np.array([factorial(s) * factorial(d - 1 - s) / factorial(d) for s in range(d)])
        scatter = np.eye(n_features)[feature.reshape(-1)]
        groups.append(_PathGroup(values, feature, zero_arr, edge_arr, weights, scatter))
    return tuple(groups), expected
