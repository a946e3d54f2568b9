"""MLflow tracing off the serving process's CPU: requests hand what happened to a queue; an exporter process of
their own builds the spans and sends them to MLflow, so span building and export never hold the serving
process's GIL (bench/README.md: in-process they cost 39-47% of 1-row throughput). It sends a second's traces in
one call (MLflow's span logging, its OTLP route on a tracking server): MLflow's own exporter makes four calls a
trace (each span, the trace, its data), which cost the exporter and the tracking server far more CPU.

MLflow being down never slows or fails a prediction: the queue is bounded (overflow is counted and dropped), an
export failure pauses tracing (batches are dropped while MLflow's health route does not answer, at most
`retry_seconds`), which resumes with the first batch after MLflow answers again, and the rate cap follows what the
exporter keeps up with. Every sampled trace that does not reach MLflow is counted, by reason."""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import queue
import random
import secrets
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from predictor import metrics

log = logging.getLogger(__name__)
EXPERIMENT = "churnguard-serving"
FORK = multiprocessing.get_context("fork")  # the exporter starts with what the server imported; it imports mlflow
PAUSED, EXPORT_FAILED = 0, 1
"""Slots of the exporter's shared counters of dropped traces (queue_full is counted where it happens)."""
BATCH_SECONDS, BATCH_MAX = 1.0, 200
"""The exporter sends what arrived within a second, at most 200 traces (400 spans) a call."""


@dataclass(frozen=True)
class Record:
    route: str
    model_version: str | None
    inputs: Any
    outputs: Any
    start_ns: int
    infer_start_ns: int
    infer_end_ns: int
    end_ns: int
    error: str | None = None


class Tracer:
    def __init__(
        self,
        *,
        enabled: bool,
        sample_ratio: float,
        max_per_second: float = 20.0,
        capacity: int = 1000,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.enabled = enabled and sample_ratio > 0
        self.sample_ratio = sample_ratio
        self.max_per_second = max_per_second
        # Token bucket: refills at max_per_second and holds one second's worth (at least one trace: a cap below
        # 1/s still lets one through every 1/max_per_second seconds).
        self._capacity = max(1.0, max_per_second)
        self._tokens = self._capacity
        self._clock = clock
        self._refilled = clock()
        self.retry_seconds = retry_seconds
        self._ceiling = max_per_second
        self._capacity_records = capacity
        self._queue: Any = None
        self._dropped: Any = None
        self._seen = [0, 0]
        self._process: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the exporter process and the thread that watches it (counts its drops, adapts the rate cap,
        restarts it if it dies). Call before the server starts threads of its own: the exporter is forked."""
        if self.enabled and self._thread is None:
            self._queue = FORK.Queue(maxsize=self._capacity_records)
            self._dropped = FORK.Array("q", 2, lock=False)
            self._spawn()
            self._thread = threading.Thread(target=self._watch, name="churnguard-tracer", daemon=True)
            self._thread.start()

    def _spawn(self) -> None:
        self._process = FORK.Process(
            target=_export_loop, args=(self._queue, self._dropped, self.retry_seconds), name="churnguard-exporter"
        )
        self._process.daemon = True  # goes with the server
        self._process.start()

    def sampled(self) -> bool:
        """Trace this request? `sample_ratio` of requests, at most `max_per_second` (called on the event loop)."""
        if not self.enabled or (self.sample_ratio < 1 and random.random() >= self.sample_ratio):
            return False
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self.max_per_second)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def submit(self, record: Record) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            metrics.TRACES_DROPPED.labels("queue_full").inc()

    def _watch(self, period: float = 0.5) -> None:
        while True:
            time.sleep(period)
            self.poll()

    def poll(self) -> None:
        """Count the exporter's drops here (where /metrics is served), restart it if it died, and adapt the rate:
        halve it when the queue fills or MLflow fails, let it grow back towards the configured cap when the
        exporter keeps up."""
        dropped = list(self._dropped)
        for slot, reason in ((PAUSED, "paused"), (EXPORT_FAILED, "export_failed")):
            if dropped[slot] > self._seen[slot]:
                metrics.TRACES_DROPPED.labels(reason).inc(dropped[slot] - self._seen[slot])
        failing = dropped != self._seen
        self._seen = dropped
        if not self._process.is_alive():
            log.warning(
                "trace exporter process %s exited (%s); starting another", self._process.pid, self._process.exitcode
            )
            self._spawn()
        backlog = self._queue.qsize()
        if failing or backlog > self._capacity_records // 2:
            self.max_per_second = max(self._ceiling / 64, self.max_per_second / 2)
        elif backlog < self._capacity_records // 10:
            self.max_per_second = min(self._ceiling, self.max_per_second * 1.25)
        self._capacity = max(1.0, self.max_per_second)


def _export_loop(records: Any, dropped: Any, retry_seconds: float, batch_seconds: float = BATCH_SECONDS) -> None:
    """The exporter process: the records of up to `batch_seconds` (at most BATCH_MAX) become their traces' spans,
    sent to MLflow in one call (its OTLP route, which stores each trace from its spans)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    # Lowest CPU priority: where it shares cores with the server (one core, or a pod's CPU limit) the server's
    # requests go first, and the exporter gets what they leave; if that is too little the queue fills, and the
    # rate cap halves until it keeps up (every dropped trace counted). SCHED_IDLE on Linux: a request that arrives
    # while the exporter runs preempts it at once (at nice 19 alone it waited for the exporter's time slice).
    os.nice(19)
    if hasattr(os, "sched_setscheduler"):
        with suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    exporter, parent = _Exporter(), os.getppid()
    paused_until = 0.0
    while True:
        batch = _gather(records, batch_seconds)
        if not batch:
            if os.getppid() != parent:  # the server is gone (killed): so is its exporter
                return
            continue
        if time.monotonic() < paused_until and not exporter.answers():  # MLflow failed a moment ago and still does
            dropped[PAUSED] += len(batch)
            continue
        try:
            exporter.export(batch)
            paused_until = 0.0  # MLflow took it: no longer paused
        except Exception as exc:  # MLflow down or failing: drop this batch and pause exports for a while
            dropped[EXPORT_FAILED] += len(batch)
            exporter.forget()
            paused_until = time.monotonic() + retry_seconds
            log.warning("trace export failed (%s: %s); pausing tracing %.0f s", type(exc).__name__, exc, retry_seconds)


def _gather(records: Any, seconds: float) -> list[Record]:
    """The next record (waiting up to a second), then whatever else arrives within `seconds`, up to BATCH_MAX."""
    try:
        batch = [records.get(timeout=1.0)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + seconds
    while len(batch) < BATCH_MAX and (left := deadline - time.monotonic()) > 0:
        try:
            batch.append(records.get(timeout=left))
        except queue.Empty:
            break
    return batch


class _Exporter:
    """Sends records to MLflow as traces: a root span per request (route, inputs, outputs) and its inference span,
    as MLflow's own tracing records them (`Span.from_dict`, the span format of MLflow's trace files), logged with the
    tracking store's `log_spans` (one OTLP request to a tracking server, or rows of the embedded store)."""

    def __init__(self) -> None:
        self.experiment_id: str | None = None
        self.client: Any = None

    def forget(self) -> None:
        """After a failure: look the experiment up again and re-learn the server's version (MLflow's REST store
        caches the version it read, None too if the server was down; log_spans refuses to send without one)."""
        from mlflow.store.tracking.rest_store import RestStore

        self.experiment_id = None
        RestStore._get_server_version.cache_clear()

    def answers(self) -> bool:
        """Is MLflow back? Its health route answers within a second (a tracking server; another store: try it).
        While paused, a batch is sent as soon as this holds and dropped only while it does not."""
        from mlflow.store.tracking.rest_store import RestStore
        from mlflow.utils.rest_utils import http_request

        store = self.client.store if self.client is not None else None
        if not isinstance(store, RestStore):
            return True
        try:
            response = http_request(store.get_host_creds(), "/health", "GET", max_retries=0, timeout=1)  # type: ignore[no-untyped-call]
        except Exception:
            return False
        return bool(response.status_code == 200)

    def _experiment(self) -> str:
        import mlflow

        if self.experiment_id is None:
            found = mlflow.get_experiment_by_name(EXPERIMENT)
            self.experiment_id = found.experiment_id if found else mlflow.create_experiment(EXPERIMENT)
        return self.experiment_id

    def export(self, batch: list[Record]) -> None:
        from mlflow.tracing.client import TracingClient

        if self.client is None:
            self.client = TracingClient()
        experiment = self._experiment()
        self.client.log_spans(experiment, [span for r in batch for span in spans(r)])


def spans(r: Record) -> list[Any]:
    """The two spans of one request's trace: the route (CHAIN, with the request's inputs and outputs) and the model
    call within it (UNKNOWN); both carry the model version and the route."""
    from mlflow.entities import Span
    from mlflow.tracing.constant import SpanAttributeKey
    from mlflow.tracing.utils import dump_span_attribute_value

    trace, root, child = secrets.randbits(128) or 1, secrets.randbits(64) or 1, secrets.randbits(64) or 1
    status = {"code": "STATUS_CODE_ERROR" if r.error else "STATUS_CODE_OK", "message": r.error or ""}
    common = {
        SpanAttributeKey.REQUEST_ID: f"tr-{trace:032x}",
        "model_version": r.model_version or "none",
        "route": r.route,
    }

    def span(span_id: int, parent: int | None, name: str, start: int, end: int, attrs: dict[str, Any]) -> Any:
        return Span.from_dict(
            {
                "trace_id": _b64(trace, 16),
                "span_id": _b64(span_id, 8),
                "parent_span_id": _b64(parent, 8) if parent else None,
                "name": name,
                "start_time_unix_nano": start,
                "end_time_unix_nano": end,
                "events": [],
                "status": status,
                "attributes": {k: dump_span_attribute_value(v) for k, v in {**common, **attrs}.items()},
            }
        )

    outputs = {"error": r.error} if r.outputs is None and r.error is not None else r.outputs  # a refusal: its body
    return [
        span(
            root,
            None,
            r.route,
            r.start_ns,
            r.end_ns,
            {SpanAttributeKey.SPAN_TYPE: "CHAIN", SpanAttributeKey.INPUTS: r.inputs, SpanAttributeKey.OUTPUTS: outputs},
        ),
        span(child, root, "inference", r.infer_start_ns, r.infer_end_ns, {SpanAttributeKey.SPAN_TYPE: "UNKNOWN"}),
    ]


def _b64(value: int, size: int) -> str:
    return base64.b64encode(value.to_bytes(size, "big")).decode("ascii")
