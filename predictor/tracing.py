"""MLflow tracing off the serving process's CPU: requests hand what happened to a queue; an exporter process of
their own builds the spans and sends them to MLflow, so span building and export never hold the serving
process's GIL (bench/README.md: in-process they cost 39-47% of 1-row throughput).

MLflow being down never slows or fails a prediction: the queue is bounded (overflow is counted and dropped), export
failures only pause tracing, which resumes on its own when MLflow answers again, and the rate cap follows what the
exporter keeps up with. Every sampled trace that does not reach MLflow is counted, by reason."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from predictor import metrics

log = logging.getLogger(__name__)
EXPERIMENT = "churnguard-serving"
EXPORTER_LOGGER = "mlflow.tracing.export.mlflow_v3"
"""MLflow's trace exporter logs (WARNING or ERROR) and swallows the failures of its calls to the server. With
MLflow's own async logging off (`python -m predictor` turns it off: the exporter process is the asynchronous part),
they happen in the exporting thread, during `end()`: `_ExporterFailures` turns them back into failures."""
FORK = multiprocessing.get_context("fork")  # the exporter starts with what the server imported (mlflow included)
PAUSED, EXPORT_FAILED = 0, 1
"""Slots of the exporter's shared counters of dropped traces (queue_full is counted where it happens)."""


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


def _export_loop(records: Any, dropped: Any, retry_seconds: float) -> None:
    """The exporter process: one trace per record, MLflow's exporter run synchronously in this thread."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    # Lowest CPU priority: where it shares cores with the server (one core, or a pod's CPU limit) the server's
    # requests go first, and the exporter gets what they leave; if that is too little the queue fills, and the
    # rate cap halves until it keeps up (every dropped trace counted).
    os.nice(19)
    exporter, parent = _Exporter(), os.getppid()
    paused_until = 0.0
    while True:
        try:
            record = records.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the server is gone (killed): so is its exporter
                return
            continue
        if time.monotonic() < paused_until:  # MLflow was failing a moment ago: drop, don't wait on it
            dropped[PAUSED] += 1
            continue
        try:
            exporter.export(record)
        except Exception as exc:  # MLflow down or failing: drop this trace and pause exports for a while
            dropped[EXPORT_FAILED] += 1
            exporter.experiment_id = None
            paused_until = time.monotonic() + retry_seconds
            log.warning("trace export failed (%s); pausing tracing %.0f s", type(exc).__name__, retry_seconds)


class _Exporter:
    def __init__(self) -> None:
        self.experiment_id: str | None = None
        self.failures = _ExporterFailures()
        self.failures.thread = threading.get_ident()
        logging.getLogger(EXPORTER_LOGGER).addHandler(self.failures)

    def _experiment(self) -> str:
        import mlflow

        if self.experiment_id is None:
            found = mlflow.get_experiment_by_name(EXPERIMENT)
            self.experiment_id = found.experiment_id if found else mlflow.create_experiment(EXPERIMENT)
        return self.experiment_id

    def export(self, r: Record) -> None:
        import mlflow

        failures = self.failures.count
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
        if self.failures.count != failures:
            raise ExportFailedError("MLflow's exporter could not send the trace")
