"""The predictor's trace sampler: a share of requests, at most so many traces per second."""

from __future__ import annotations

import pytest

from predictor.tracing import Tracer


def test_rate_cap_holds_under_a_burst_and_refills_with_time() -> None:
    now = [1000.0]
    tracer = Tracer(enabled=True, sample_ratio=1.0, max_per_second=5, clock=lambda: now[0])
    assert sum(tracer.sampled() for _ in range(100)) == 5  # a burst: one second's worth
    now[0] += 0.5
    assert sum(tracer.sampled() for _ in range(100)) == 2
    now[0] += 10  # idle: the bucket holds at most one second's worth
    assert sum(tracer.sampled() for _ in range(100)) == 5


def test_a_cap_below_one_per_second_still_traces_now_and_then() -> None:
    now = [0.0]
    tracer = Tracer(enabled=True, sample_ratio=1.0, max_per_second=0.5, clock=lambda: now[0])
    seen = 0
    for _ in range(10):  # 10 s of constant traffic: one trace every 2 s
        seen += sum(tracer.sampled() for _ in range(100))
        now[0] += 1.0
    assert seen == 5


def test_ratio_applies_before_the_cap_and_off_means_never() -> None:
    tracer = Tracer(enabled=True, sample_ratio=0.1, max_per_second=1e9)
    assert 700 <= sum(tracer.sampled() for _ in range(10_000)) <= 1300  # 10%: ±10 sigma
    assert not any(Tracer(enabled=False, sample_ratio=1.0).sampled() for _ in range(100))
    assert not any(Tracer(enabled=True, sample_ratio=0.0).sampled() for _ in range(100))


def test_a_record_becomes_the_two_spans_of_one_trace_as_mlflow_reads_them() -> None:
    """predictor/tracing.py builds MLflow spans with `Span.from_dict` and MLflow's attribute keys: they must convert
    to OTLP and back (what `log_spans` sends and a tracking server stores) with everything intact."""
    from mlflow.entities import Span

    from predictor.tracing import Record, spans

    r = Record("v1.predict", "7", {"instances": [{"age": 40}], "rows": 1}, {"predictions": [0.25]}, 10, 20, 30, 40)
    root, inner = (Span.from_otel_proto(s.to_otel_proto()) for s in spans(r))
    assert root.trace_id == inner.trace_id and root.trace_id.startswith("tr-")
    assert (root.parent_id, inner.parent_id) == (None, root.span_id)
    assert (root.name, root.span_type, root.inputs, root.outputs) == ("v1.predict", "CHAIN", r.inputs, r.outputs)
    assert (root.start_time_ns, root.end_time_ns, inner.start_time_ns, inner.end_time_ns) == (10, 40, 20, 30)
    assert inner.attributes["model_version"] == "7" and root.status.status_code.value == "OK"
    failed = spans(Record("v2.infer", None, {"body": "x"}, None, 1, 1, 1, 2, error="bad"))[0]
    assert failed.status.status_code.value == "ERROR" and failed.outputs == {"error": "bad"}
    body = {"error": "bad", "details": [{"row": 0, "field": "age", "value": 999, "rule": "<= 120"}], "error_count": 1}
    refused = spans(Record("v1.predict", "7", {"instances": [{"age": 999}], "rows": 1}, body, 1, 1, 1, 2, error="bad"))
    assert refused[0].status.status_code.value == "ERROR" and refused[0].outputs == body


def test_mlflow_still_caches_the_server_version_the_exporter_forgets_after_a_failure() -> None:
    """MLflow's REST store caches the server version it read, None too when the server was down, and then refuses
    log_spans: the exporter clears that cache after a failure (a private API: this fails when it moves)."""
    from mlflow.store.tracking.rest_store import RestStore

    cached = RestStore._get_server_version
    assert callable(cached.cache_clear) and callable(cached.cache_info)


def test_the_exporter_process_runs_at_the_lowest_cpu_priority() -> None:
    """On a core it shares with the server, a request preempts the exporter at once (SCHED_IDLE, nice 19). Started
    with spawn and no Tracer: a forked child would hold this test process's pipes (Playwright's among them), and a
    Tracer's watcher would start another exporter when this one is killed."""
    import multiprocessing
    import os
    import time

    from predictor.tracing import _export_loop

    spawn = multiprocessing.get_context("spawn")
    records, dropped = spawn.Queue(), spawn.Array("q", 2, lock=False)  # held here until the child has them
    proc = spawn.Process(target=_export_loop, args=(records, dropped, 5.0), daemon=True)
    proc.start()
    try:
        assert proc.pid is not None
        deadline = time.monotonic() + 20
        while os.sched_getscheduler(proc.pid) != os.SCHED_IDLE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 19
    finally:
        proc.kill()
        proc.join(5)


@pytest.mark.integration  # a loopback HTTP server
def test_while_paused_the_exporter_asks_mlflow_health_and_sends_as_soon_as_it_answers() -> None:
    """After a failed export, batches are dropped only while MLflow's health route does not answer: tracing resumes
    with the first batch after MLflow is back, not after a fixed pause (which dropped the first traces of a server
    that came back fast)."""
    import http.server
    import socket
    import threading

    from mlflow.tracing.client import TracingClient

    from predictor.tracing import _Exporter

    status = [200]

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    exporter = _Exporter()
    exporter.client = TracingClient(f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        assert exporter.answers()
        status[0] = 503
        assert not exporter.answers()
    finally:
        httpd.shutdown()
        httpd.server_close()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        exporter.client = TracingClient(f"http://127.0.0.1:{closed.getsockname()[1]}")
        assert not exporter.answers()
