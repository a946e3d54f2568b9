"""Prometheus metrics of the predictor, declared once; labels are bounded sets (route templates, status classes,
model versions, outcomes, error reasons, spec features and their reference bins)."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from contract import quality as q
from contract import reference
from contract.spec import DatasetSpec, Feature

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "churnguard_http_requests",
    "HTTP requests by route template, method and status class.",
    ["route", "method", "status_class"],
)
HTTP_LATENCY = Histogram(
    "churnguard_http_request_duration_seconds",
    "HTTP request duration by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_LATENCY = Histogram(
    "churnguard_inference_seconds",
    "Time in the model call of one request (decoding excluded).",
    ["model_version"],
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter("churnguard_predictions", "Scored rows by verdict.", ["model_version", "outcome"])
ERRORS = Counter("churnguard_prediction_errors", "Rejected or failed requests by reason.", ["reason"])
PROBABILITY = Histogram(
    "churnguard_churn_probability",
    "Churn probability of scored rows.",
    ["model_version"],
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
OUTSIDE_RANGE = Counter(
    "churnguard_outside_training_range",
    "Scored rows with a feature beyond the range the served model was trained on, by feature.",
    ["feature"],
)
ROWS = Histogram(
    "churnguard_request_rows", "Rows per scoring request.", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
)
# multiprocess_mode: how worker processes' values combine when --workers > 1 (ignored with one process); "max",
# not "min": the supervising parent process holds a 0 for every gauge.
MODEL_LOADED = Gauge("churnguard_model_loaded", "1 while a model is loaded and served.", multiprocess_mode="livemax")
MODEL_INFO = Gauge(
    "churnguard_model_info",
    "The served model (value 1).",
    ["model_name", "model_version", "threshold"],
    multiprocess_mode="livemax",
)
RELOADS = Counter("churnguard_model_reloads", "Model (re)loads by result.", ["result"])
for _result in ("success", "failure"):  # both series exist from the start, at 0
    RELOADS.labels(_result)
REGISTRY_ERRORS = Counter(
    "churnguard_registry_errors", "Polls of the model registry that failed (unreachable, no alias)."
)
LAST_RELOAD = Gauge(
    "churnguard_model_last_reload_timestamp_seconds", "When the served model was loaded.", multiprocess_mode="livemax"
)
START_TIME = Gauge("churnguard_start_time_seconds", "When the predictor process started.", multiprocess_mode="livemax")
TRAINING_POSITIVE_RATE = Gauge(
    "churnguard_training_positive_rate",
    "Share of training rows the served model calls churn (its base rate).",
    multiprocess_mode="livemax",
)
TRACES_DROPPED = Counter(
    "churnguard_traces_dropped",
    "Sampled traces not exported, by reason: queue_full, paused (MLflow failed a moment ago), export_failed.",
    ["reason"],
)
for _reason in ("queue_full", "paused", "export_failed"):
    TRACES_DROPPED.labels(_reason)

# Live quality (contract.quality, docs/quality.md): source "realized" counts labelled outcomes, "estimated" the
# expected outcomes of served rows. All counters: replicas and workers add up.
QUALITY_ROWS = Counter("churnguard_quality_rows", "Rows behind the quality counts.", ["model_version", "source"])
QUALITY_CONFUSION = Counter(
    "churnguard_quality_confusion",
    "Confusion matrix at the version's threshold (estimated: expected counts).",
    ["model_version", "source", "cell"],
)
QUALITY_SCORE = Histogram(
    "churnguard_quality_score",
    "Probabilities of positives (actual=1) and negatives (actual=0); estimated: each row weighs p and 1 - p.",
    ["model_version", "source", "actual"],
    buckets=tuple(q.EDGES.tolist()),
)
QUALITY_SCORE_BIN = Counter(
    "churnguard_quality_score_bin",
    "The same counts per probability bin, not cumulative (ROC AUC in PromQL needs both forms).",
    ["model_version", "source", "actual", "le"],
)
QUALITY_PROBABILITY_BIN = Counter(
    "churnguard_quality_probability_bin",
    "Sum of the probabilities of the rows counted, per probability bin (with the positives: calibration).",
    ["model_version", "source", "le"],
)
QUALITY_BRIER = Counter(
    "churnguard_quality_brier", "Sum of (p - y)^2 (estimated: of p (1 - p)).", ["model_version", "source"]
)
FEEDBACK = Counter(
    "churnguard_feedback_outcomes",
    "Outcomes sent to the feedback route: accepted, replayed, rejected (forged, unknown, expired, invalid label).",
    ["result"],
)
for _result in ("accepted", "replayed", "rejected"):
    FEEDBACK.labels(_result)
MODEL_TEST_METRIC = Gauge(
    "churnguard_model_test_metric",
    "The served version's metrics on its held-out test split (f1, roc_auc, ece, ...).",
    ["model_version", "metric"],
    multiprocess_mode="livemax",
)

SHADOW_ROWS = Counter(
    "churnguard_shadow_rows",
    "Served rows offered to the challenger in shadow, by result: scored, dropped (queue full), incompatible (other "
    "features).",
    ["champion_version", "challenger_version", "result"],
)
SHADOW_AGREEMENT = Counter(
    "churnguard_shadow_agreement",
    "Shadowed rows by whether the challenger's verdict (at its threshold) is the champion's.",
    ["champion_version", "challenger_version", "verdict"],
)
SHADOW_DIFFERENCE = Histogram(
    "churnguard_shadow_score_difference",
    "Challenger's minus champion's churn probability of each shadowed row.",
    ["champion_version", "challenger_version"],
    buckets=(-0.5, -0.2, -0.1, -0.05, -0.02, -0.005, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
CHALLENGER_INFO = Gauge(
    "churnguard_challenger_info",
    "The challenger scored in shadow (value 1).",
    ["model_name", "model_version", "threshold"],
    multiprocess_mode="livemax",
)


def shadow_series(champion: str, challenger: str) -> None:
    """A pair's shadow series, and the challenger's quality series, at 0 before its first shadowed row (as
    quality_series: increase() counts a series from its first scrape)."""
    quality_series(challenger)
    for result in ("scored", "dropped", "incompatible"):
        SHADOW_ROWS.labels(champion, challenger, result)
    for verdict in ("same", "different"):
        SHADOW_AGREEMENT.labels(champion, challenger, verdict)
    SHADOW_DIFFERENCE.labels(champion, challenger)


def shadowed(champion: str, challenger: str, difference: np.ndarray, same: int, rows: int) -> None:
    SHADOW_ROWS.labels(champion, challenger, "scored").inc(rows)
    SHADOW_AGREEMENT.labels(champion, challenger, "same").inc(same)
    SHADOW_AGREEMENT.labels(champion, challenger, "different").inc(rows - same)
    observe_many(SHADOW_DIFFERENCE.labels(champion, challenger), difference)


def challenger(model_name: str, version: str, threshold: float, *, serving: bool) -> None:
    labels = (model_name, version, f"{threshold:.4f}")
    CHALLENGER_INFO.labels(*labels).set(1 if serving else 0)
    if not serving:
        CHALLENGER_INFO.remove(*labels)


@dataclass(frozen=True)
class _QualityChildren:
    rows: Any
    brier: Any
    confusion: list[Any]
    score: dict[str, Any]
    score_bins: dict[str, list[Any]]
    probability_bins: list[Any]


_QUALITY_CHILDREN: dict[tuple[str, str], _QualityChildren] = {}


def _quality_children(version: str, source: str) -> _QualityChildren:
    """The series of one version and source, made once (all at 0) and kept: a flush only increments."""
    children = _QUALITY_CHILDREN.get((version, source))
    if children is None:
        children = _QualityChildren(
            QUALITY_ROWS.labels(version, source),
            QUALITY_BRIER.labels(version, source),
            [QUALITY_CONFUSION.labels(version, source, cell) for cell in q.CELLS],
            {a: QUALITY_SCORE.labels(version, source, a) for a in ("1", "0")},
            {a: [QUALITY_SCORE_BIN.labels(version, source, a, le) for le in q.LE] for a in ("1", "0")},
            [QUALITY_PROBABILITY_BIN.labels(version, source, le) for le in q.LE],
        )
        _QUALITY_CHILDREN[(version, source)] = children
    return children


def quality_series(version: str) -> None:
    """Every quality series of `version` at 0, from the moment it is served: PromQL's increase() counts a series
    from its first scrape, so counts made before a series is first scraped would be lost to the alerts."""
    for source in ("realized", "estimated"):
        _quality_children(version, source)


def quality(version: str, source: str, t: q.Tally) -> None:
    """Add one tally to the quality counters (only the bins it touches)."""
    c = _quality_children(version, source)
    c.rows.inc(t.rows)
    for child, v in zip(c.confusion, t.confusion.tolist(), strict=True):
        child.inc(v)
    c.brier.inc(t.brier)
    for actual, weights, total in (("1", t.positive, t.score_sums[0]), ("0", t.negative, t.score_sums[1])):
        hist, bins = c.score[actual], c.score_bins[actual]
        hist._sum.inc(float(total))
        for b in np.flatnonzero(weights).tolist():
            w = float(weights[b])
            hist._buckets[b].inc(w)  # weighted observations (tests/unit/test_quality.py holds this to observe())
            bins[b].inc(w)
    for b in np.flatnonzero(t.probability).tolist():
        c.probability_bins[b].inc(float(t.probability[b]))


def process_dead(pid: int) -> None:
    """A worker process is gone: drop its live gauges from the multiprocess files (no-op with one process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def status_class(code: int) -> str:
    return f"{code // 100}xx"


def served(
    model_name: str, version: str, threshold: float, positive_rate: float, previous: tuple[str, float] | None
) -> None:
    if previous is not None:  # 0 first: in multiprocess mode a removed series would keep its last value
        old = (model_name, previous[0], f"{previous[1]:.4f}")
        MODEL_INFO.labels(*old).set(0)
        MODEL_INFO.remove(*old)
    MODEL_INFO.labels(model_name, version, f"{threshold:.4f}").set(1)
    quality_series(version)
    MODEL_LOADED.set(1)
    LAST_RELOAD.set(time.time())
    TRAINING_POSITIVE_RATE.set(positive_rate)
    RELOADS.labels("success").inc()


def test_metrics(version: str, values: dict[str, float], previous: str | None) -> None:
    """The served version's test-split metrics (the live quality's yardstick); the previous version's go."""
    if previous is not None and previous != version:
        for name in values:
            MODEL_TEST_METRIC.labels(previous, name).set(0)  # multiprocess: a removed series keeps its last value
            MODEL_TEST_METRIC.remove(previous, name)
    for name, value in values.items():
        MODEL_TEST_METRIC.labels(version, name).set(value)


def unserved(model_name: str, version: str, threshold: float) -> None:
    """The served model was dropped (the repository route's unload): no model loaded until the loader's next try."""
    labels = (model_name, version, f"{threshold:.4f}")
    MODEL_INFO.labels(*labels).set(0)
    MODEL_INFO.remove(*labels)
    MODEL_LOADED.set(0)


def outside_range(flags: list[list[str]]) -> None:
    for row in flags:
        for name in row:
            OUTSIDE_RANGE.labels(name).inc()


@dataclass(frozen=True)
class _ScoringChildren:
    latency: Any
    churn: Any
    no_churn: Any
    probability: Any


_SCORING_CHILDREN: dict[str, _ScoringChildren] = {}


def scored(version: str, proba: np.ndarray, labels: np.ndarray, seconds: float) -> None:
    c = _SCORING_CHILDREN.get(version)
    if c is None:  # each version's series looked up once, not per request (`labels()` takes a lock and a dict)
        c = _SCORING_CHILDREN.setdefault(
            version,
            _ScoringChildren(
                INFERENCE_LATENCY.labels(version),
                PREDICTIONS.labels(version, "churn"),
                PREDICTIONS.labels(version, "no_churn"),
                PROBABILITY.labels(version),
            ),
        )
    c.latency.observe(seconds)
    ROWS.observe(len(proba))
    churn = int(np.count_nonzero(labels))
    c.churn.inc(churn)
    c.no_churn.inc(len(labels) - churn)
    observe_many(c.probability, proba)


def observe_many(hist: Histogram, values: np.ndarray) -> None:
    """`hist.observe(v)` for every value, as one increment per bucket (a 1,000-row batch: 20 increments, not 1,000
    observations). Uses the child's bucket values, which prometheus_client keeps in `_buckets` / `_sum`."""
    if len(values) < 8 or not hasattr(hist, "_buckets") or not np.isfinite(values).all():
        for v in values.tolist():
            hist.observe(v)
        return
    bounds = np.asarray(hist._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, n in zip(hist._buckets, counts.tolist(), strict=True):
        if n:
            bucket.inc(n)
    hist._sum.inc(float(values.sum()))


def bin_texts(f: Feature, ref: dict[str, Any]) -> list[str]:
    """What each reference bin holds, in bin order: "<= 25", ..., "> 80" for numerics (bins are right-closed),
    the category's label ("Month-to-month") for categories."""
    if f.is_numeric:
        edges = ref["edges"]
        return [*(f"<= {e:g}" for e in edges), f"> {edges[-1]:g}"]
    return [f.label(v) for v in f.values or ()]


def _numbered(texts: list[str]) -> list[str]:
    w = max(2, len(str(len(texts) - 1)))
    return [f"{i:0{w}d} {t}" for i, t in enumerate(texts)]


def bin_labels(f: Feature, ref: dict[str, Any]) -> list[str]:
    """The `bin` label of each reference bin, numbered so that sorting the labels as text keeps the bins in order
    (what a dashboard's bar chart does): "00 <= 25", ..., "09 > 80" for numerics, "00 Month-to-month" for
    categories."""
    return _numbered(bin_texts(f, ref))


@dataclass(frozen=True)
class DriftState:
    """One consistent reading of a DriftMonitor (taken under its lock): what `/metrics` and the monitoring route
    both present."""

    counts: list[np.ndarray]
    """Per feature, rows with a value in each reference bin since load."""
    sums: np.ndarray
    """Per feature, the sum of its values since load."""
    window_rows: int
    """Rows in the sliding window now (at most the monitor's `window`)."""
    rows_seen: int
    """Rows observed since load."""
    live: list[np.ndarray] | None
    """Per feature, the share of the window's rows with a value in each reference bin; None while it is empty."""
    psi: list[float] | None
    """Per feature, PSI of the window against the reference; None below the monitor's `min_rows`."""


class DriftMonitor(Collector):
    """Live input distributions against the training reference: cumulative per-feature histograms with the
    reference's bin edges as buckets, and PSI over a sliding window of the most recent rows (once it holds
    `min_rows`; a window smaller than that reports PSI once full). `model_name`/`model_version` say whose inputs
    these are (a reload replaces the monitor)."""

    def __init__(
        self,
        spec: DatasetSpec,
        ref: dict[str, Any],
        window: int,
        min_rows: int = 50,
        *,
        model_name: str | None = None,
        model_version: str = "",
    ) -> None:
        self.spec = spec
        self.window = window
        self.min_rows = min(min_rows, window)
        self.model_name = model_name or spec.name
        self.model_version = model_version
        self._lock = threading.Lock()
        self._edges = [np.asarray(ref[f.name]["edges"], dtype=float) if f.is_numeric else None for f in spec.features]
        self._expected = [np.asarray(ref[f.name]["proportions"], dtype=float) for f in spec.features]
        self._texts = [bin_texts(f, ref[f.name]) for f in spec.features]
        self._labels = [_numbered(t) for t in self._texts]
        # Histogram buckets ("le"): upper edges for numerics; for categories their codes 0..k-2, then +Inf.
        self._buckets = [
            [*(f"{e:g}" for e in ref[f.name]["edges"]), "+Inf"]
            if f.is_numeric
            else [*(str(i) for i in range(len(f.values or ()) - 1)), "+Inf"]
            for f in spec.features
        ]
        self._counts = [np.zeros(len(e)) for e in self._expected]
        self._sums = np.zeros(len(spec.features))
        self._recent: deque[np.ndarray] = deque()
        self._recent_rows = 0
        self._rows_seen = 0
        self._pending: list[np.ndarray] = []  # scored rows not binned yet (see observe)
        self._pending_rows = 0

    def _bins(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape, dtype=np.int64)
        for j, edges in enumerate(self._edges):
            col = x[:, j]
            out[:, j] = np.searchsorted(edges, col, side="left") if edges is not None else col.astype(np.int64)
        return out

    def observe(self, x: np.ndarray) -> None:
        """Record scored rows (spec order, categories as codes). Only queued here; binned in bulk at the next
        scrape, or by the request that brings the queue to `window` rows (which bounds the memory between
        scrapes)."""
        with self._lock:
            self._pending.append(x)
            self._pending_rows += len(x)
            if self._pending_rows >= self.window:
                self._flush()

    def _flush(self) -> None:
        """Bin the queued rows (lock held); missing values are not binned."""
        if not self._pending:
            return
        x = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        self._rows_seen += len(x)
        present = ~np.isnan(x)
        complete = np.count_nonzero(present) == present.size  # the common case: no masks, no copies
        bins = self._bins(x if complete else np.where(present, x, 0.0))
        for j in range(x.shape[1]):
            values, binned = (x[:, j], bins[:, j]) if complete else (x[present[:, j], j], bins[present[:, j], j])
            self._counts[j] += np.bincount(binned, minlength=len(self._counts[j]))
            self._sums[j] += float(values.sum())
        self._recent.append(bins if complete else np.where(present, bins, -1))
        self._recent_rows += len(bins)
        while self._recent and self._recent_rows - len(self._recent[0]) >= self.window:
            self._recent_rows -= len(self._recent.popleft())

    def read(self) -> DriftState:
        """Bin what is queued and read everything at once: the cumulative counts, the window's shares and PSI."""
        with self._lock:
            self._flush()
            counts = [c.copy() for c in self._counts]
            sums = self._sums.copy()
            seen = self._rows_seen
            window = np.concatenate(list(self._recent))[-self.window :] if self._recent else None
        if window is None:
            return DriftState(counts, sums, 0, seen, None, None)
        in_bins = [
            np.bincount(col[col >= 0], minlength=len(expected)).astype(float)
            for col, expected in zip(window.T, self._expected, strict=True)
        ]
        live = [c / max(c.sum(), 1.0) for c in in_bins]
        ready = len(window) >= self.min_rows
        psi = [reference.psi(e, c) for e, c in zip(self._expected, in_bins, strict=True)] if ready else None
        return DriftState(counts, sums, len(window), seen, live, psi)

    def snapshot(self) -> dict[str, Any]:
        """The monitoring route's JSON: per feature its PSI and, per reference bin, the training and window shares."""
        state = self.read()
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "window": self.window,
            "window_rows": state.window_rows,
            "min_rows": self.min_rows,
            "rows_seen": state.rows_seen,
            "features": [
                {
                    "name": f.name,
                    "kind": "numeric" if f.is_numeric else "categorical",
                    "psi": None if state.psi is None else state.psi[j],
                    "bins": [
                        {
                            "label": text,
                            "reference": float(self._expected[j][b]),
                            "live": None if state.live is None else float(state.live[j][b]),
                        }
                        for b, text in enumerate(self._texts[j])
                    ],
                }
                for j, f in enumerate(self.spec.features)
            ],
        }

    def collect(self) -> Any:
        hist = HistogramMetricFamily(
            "churnguard_feature_value",
            "Served feature values; buckets are the training reference's bin edges (categories: their codes).",
            labels=["feature"],
        )
        ref = GaugeMetricFamily(
            "churnguard_feature_reference_ratio",
            "Share of training rows in each reference bin.",
            labels=["feature", "bin"],
        )
        live = GaugeMetricFamily(
            "churnguard_feature_window_ratio",
            "Share of recent served rows in each reference bin.",
            labels=["feature", "bin"],
        )
        psi_g = GaugeMetricFamily(
            "churnguard_feature_psi", "PSI of the recent window against the training reference.", labels=["feature"]
        )
        state = self.read()
        for j, f in enumerate(self.spec.features):
            cumulative = np.cumsum(state.counts[j]).tolist()
            hist.add_metric([f.name], list(zip(self._buckets[j], cumulative, strict=True)), float(state.sums[j]))
            for b, label in enumerate(self._labels[j]):
                ref.add_metric([f.name, label], float(self._expected[j][b]))
                if state.live is not None:
                    live.add_metric([f.name, label], float(state.live[j][b]))
            if state.psi is not None:
                psi_g.add_metric([f.name], state.psi[j])
        rows_g = GaugeMetricFamily("churnguard_drift_window_rows", "Rows in the drift window.", value=state.window_rows)
        yield from (hist, ref, live, psi_g, rows_g)


class DriftCollector(Collector):
    """Registered once; serves whichever monitor belongs to the model being served."""

    def __init__(self) -> None:
        self.monitor: DriftMonitor | None = None

    def collect(self) -> Any:
        if self.monitor is not None:
            yield from self.monitor.collect()


DRIFT = DriftCollector()


def registry(multiprocess: bool) -> CollectorRegistry:
    """What `/metrics` serves. One process: the default registry (which has the process collector). Several
    workers: every worker's counters and histograms summed from prometheus_client's multiprocess files, plus
    this worker's own process and drift collectors (each worker watches a share of the traffic)."""
    if not multiprocess:
        if DRIFT not in REGISTRY._collector_to_names:
            REGISTRY.register(DRIFT)
        return REGISTRY
    reg = CollectorRegistry()
    MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    ProcessCollector(registry=reg)
    reg.register(DRIFT)
    return reg
