"""MLflow tracing off the request path: requests enqueue what happened; one thread turns it into traces.

MLflow being down never slows or fails a prediction: the queue is bounded (overflow is counted and dropped),
and export failures only pause tracing, which resumes on its own when MLflow answers again. Every sampled trace
that does not reach MLflow is counted, by reason."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow

from predictor import metrics

log = logging.getLogger(__name__)
EXPERIMENT = "churnguard-serving"
EXPORTER_LOGGER = "mlflow.tracing.export.mlflow_v3"
"""MLflow's trace exporter logs (WARNING or ERROR) and swallows the failures of its calls to the server. With
MLflow's own async logging off (`python -m predictor` turns it off: this thread is the asynchronous part), they
happen in the tracer thread, during `end()`: `_ExporterFailures` turns them back into failures."""


class _ExporterFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread: int | None = None
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.count += 1


class ExportFailedError(RuntimeError):
    """MLflow's exporter reported that the trace did not reach the server."""


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
        self._queue: queue.Queue[Record] = queue.Queue(maxsize=capacity)
        self._experiment_id: str | None = None
        self._thread: threading.Thread | None = None
        self._failures = _ExporterFailures()

    def start(self) -> None:
        if self.enabled and self._thread is None:
            logging.getLogger(EXPORTER_LOGGER).addHandler(self._failures)
            self._thread = threading.Thread(target=self._run, name="churnguard-tracer", daemon=True)
            self._thread.start()

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

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = mlflow.get_experiment_by_name(EXPERIMENT)
            self._experiment_id = found.experiment_id if found else mlflow.create_experiment(EXPERIMENT)
        return self._experiment_id

    def _run(self) -> None:
        self._failures.thread = threading.get_ident()
        paused_until = 0.0
        while True:
            record = self._queue.get()
            if time.monotonic() < paused_until:  # MLflow was failing a moment ago: drop, don't wait on it
                metrics.TRACES_DROPPED.labels("paused").inc()
                continue
            try:
                failures = self._failures.count
                self._export(record)
                if self._failures.count != failures:
                    raise ExportFailedError("MLflow's exporter could not send the trace")
            except Exception as exc:  # MLflow down or failing: drop this trace and pause exports for a while
                metrics.TRACES_DROPPED.labels("export_failed").inc()
                self._experiment_id = None
                paused_until = time.monotonic() + self.retry_seconds
                log.warning("trace export failed (%s); pausing tracing %.0f s", type(exc).__name__, self.retry_seconds)

    def _export(self, r: Record) -> None:
        attrs = {"model_version": r.model_version or "none", "route": r.route}
        root = mlflow.start_span_no_context(
            name=r.route,
            span_type="CHAIN",
            inputs=r.inputs,
            attributes=attrs,
            experiment_id=self._experiment(),
            start_time_ns=r.start_ns,
        )
        child = mlflow.start_span_no_context(
            name="inference", span_type="UNKNOWN", parent_span=root, attributes=attrs, start_time_ns=r.infer_start_ns
        )
        child.end(end_time_ns=r.infer_end_ns, status="ERROR" if r.error else "OK")
        root.end(
            outputs=r.outputs if r.error is None else {"error": r.error},
            status="ERROR" if r.error else "OK",
            end_time_ns=r.end_ns,
        )
