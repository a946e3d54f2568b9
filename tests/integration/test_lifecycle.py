"""The predictor's lifecycle against an MLflow server this module starts, stops and changes: late start,
outage mid-run (predictions go on, traces come back), alias moves, and a broken version that must not serve."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from tests.support import PYTHON, free_port, metric, mlflow_server_cmd, running, train, wait_for, wait_http
from training.data import generate

MODEL = "churnguard"
REASONS = ("queue_full", "paused", "export_failed")
ROW = {"age": 30, "tenure_months": 3, "monthly_charges": 90.0, "contract_type": 0, "num_tickets": 5}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A server home with one champion in it; the server itself is started by the tests as they need it."""
    home = tmp_path_factory.mktemp("lifecycle")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(mlflow_server_cmd(home, port), log=home / "server.log", ready_url=f"{url}/health", timeout=90):
        result = train(url, home / "train")
        assert result.returncode == 0, result.stderr
    return {"home": home, "port": port, "url": url}


def server(store: dict[str, Any]):  # type: ignore[no-untyped-def]
    return running(
        mlflow_server_cmd(store["home"], store["port"]),
        log=store["home"] / "server.log",
        ready_url=f"{store['url']}/health",
        timeout=90,
    )


@pytest.fixture(scope="module")
def predictor(store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Started while MLflow is DOWN: it must come up live but not ready."""
    home = tmp_path_factory.mktemp("lifecycle-predictor")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "MLFLOW_TRACKING_URI": store["url"],
        "CHURN_RELOAD_INTERVAL": "1",
        "CHURN_TRACE_SAMPLE_RATIO": "1",  # every request traced: the test counts traces
        "CHURN_TRACE_MAX_PER_SECOND": "1000",  # the rate cap never in the way, even halved by an outage's failures
        "CHURN_INFERENCE_LOG_DIR": str(home / "log"),
    }
    with running(
        [PYTHON, "-m", "predictor", "--http_port", str(port)],
        env=env,
        log=home / "predictor.log",
        ready_url=f"{url}/v2/health/live",
        timeout=60,
    ):
        yield {"url": url, "home": home}


def predict(url: str, rows: list[dict[str, Any]] | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": rows or [ROW]}, timeout=10)


def served_version(url: str) -> str:
    return str(requests.get(f"{url}/v1/models/{MODEL}/info", timeout=10).json()["model_version"])


def traces(url: str) -> int:
    mlflow.set_tracking_uri(url)
    exp = MlflowClient(url).get_experiment_by_name("churnguard-serving")
    return (
        0
        if exp is None
        else len(MlflowClient(url).search_traces(locations=[exp.experiment_id], max_results=500, include_spans=False))
    )


def test_not_ready_until_mlflow_answers_then_ready(store: dict[str, Any], predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    assert requests.get(f"{url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
    assert requests.get(f"{url}/v1/models/{MODEL}", timeout=5).status_code == 503
    assert predict(url).status_code == 503
    assert metric(url, "churnguard_model_loaded ") == 0
    log = (predictor["home"] / "predictor.log").read_text()
    assert "NotReady" not in log and "Traceback" not in log, log[-2000:]  # probes' 503s are expected, not errors
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=90)  # backoff is capped by the 1 s reload interval
        assert predict(url).status_code == 200
        assert metric(url, "churnguard_model_loaded ") == 1


def test_mlflow_outage_does_not_stop_predictions_and_tracing_resumes(
    store: dict[str, Any], predictor: dict[str, Any]
) -> None:
    url = predictor["url"]
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=60)
        assert predict(url).status_code == 200
        wait_for(lambda: traces(store["url"]) >= 1, 30, "a trace to reach MLflow")
    # MLflow is down now
    dropped = {reason: metric(url, f'churnguard_traces_dropped_total{{reason="{reason}"}}') for reason in REASONS}
    for _ in range(20):
        r = predict(url)
        assert r.status_code == 200, r.text
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200

    def lost() -> dict[str, float]:
        return {r: metric(url, f'churnguard_traces_dropped_total{{reason="{r}"}}') - dropped[r] for r in REASONS}

    # every one of the 20 traces is counted as dropped: the first by MLflow's exporter failing, the rest paused
    wait_for(lambda: sum(lost().values()) >= 20, 30, "20 dropped traces to be counted")
    assert sum(lost().values()) == 20 and lost()["export_failed"] >= 1, lost()
    with server(store):
        before = traces(store["url"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and traces(store["url"]) <= before:
            assert predict(url).status_code == 200
            time.sleep(1)
        assert traces(store["url"]) > before, "tracing did not resume after MLflow came back"


def test_each_sampled_request_is_one_mlflow_trace_with_its_spans_inputs_and_outputs(
    store: dict[str, Any], predictor: dict[str, Any]
) -> None:
    """The exporter process sends a second's traces in one call (predictor/tracing.py): each still arrives as its own
    trace, as MLflow's tracing would record it: the route's span with the request and the answer, the model call
    inside it, the version and route on both, and a refused request as an ERROR trace."""
    url = predictor["url"]
    rows = [{**ROW, "age": age} for age in range(61, 66)]  # ages no other test sends: these requests' traces
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=60)
        version = served_version(url)
        answers = {}
        for row in rows:
            r = predict(url, [row])
            assert r.status_code == 200, r.text
            answers[row["age"]] = r.json()
        bad = predict(url, [{**ROW, "age": 999}])
        assert bad.status_code == 422, bad.text
        client = MlflowClient(store["url"])
        wait_for(lambda: client.get_experiment_by_name("churnguard-serving"), 30, "the serving experiment")
        experiment = client.get_experiment_by_name("churnguard-serving").experiment_id

        def ours() -> dict[int, Any]:
            found = {}
            for t in client.search_traces(locations=[experiment], max_results=500):
                root = next(s for s in t.data.spans if s.parent_id is None)
                instances = (root.inputs or {}).get("instances") or [{}]
                if instances[0].get("age") in (*answers, 999):
                    found.setdefault(instances[0]["age"], []).append(t)
            return found

        wait_for(lambda: len(ours()) == len(rows) + 1, 30, "the six requests' traces")
        found = ours()
    for age, answer in answers.items():
        (trace,) = found[age]  # one trace per request
        assert trace.info.state.value == "OK"
        root, inner = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
        assert (root.name, root.span_type, inner.name, inner.parent_id) == (
            "v1.predict",
            "CHAIN",
            "inference",
            root.span_id,
        )
        assert root.inputs == {"instances": [{**ROW, "age": age}], "rows": 1}
        assert root.outputs == answer  # the answer as the client got it, prediction_id included
        assert root.start_time_ns <= inner.start_time_ns <= inner.end_time_ns <= root.end_time_ns
        for span in (root, inner):
            assert span.attributes["model_version"] == version and span.attributes["route"] == "v1.predict"
    (refused,) = found[999]
    assert refused.info.state.value == "ERROR"
    root = next(s for s in refused.data.spans if s.parent_id is None)
    assert root.inputs == {"instances": [{**ROW, "age": 999}], "rows": 1}
    assert root.outputs == bad.json()  # the 422's body as the client got it: the message and each field's rule
    assert root.outputs["details"][0]["field"] == "age" and root.outputs["error_count"] == 1


def test_alias_move_is_served_without_restart(store: dict[str, Any], predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=60)
        old = served_version(url)
        before = predict(url).json()["predictions"][0]["churn_probability"]
        grid = json.dumps({"n_estimators": [150], "max_depth": [3], "learning_rate": [0.05], "subsample": [0.8]})
        result = train(store["url"], store["home"] / "train2", env={"CHURN_GRID": grid})
        assert result.returncode == 0, result.stderr
        wait_for(lambda: served_version(url) != old, 60, "the new champion to be served")
        after = predict(url).json()
        assert after["model_version"] == served_version(url) != old
        assert after["predictions"][0]["churn_probability"] != before


def test_broken_version_is_rejected_and_the_old_one_keeps_serving(
    store: dict[str, Any], predictor: dict[str, Any], tmp_path: Path
) -> None:
    url = predictor["url"]
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=60)
        good = served_version(url)
        failures = metric(url, 'churnguard_model_reloads_total{result="failure"}')
        mlflow.set_tracking_uri(store["url"])
        client = MlflowClient(store["url"])
        with mlflow.start_run() as run:  # a "model" with no ChurnGuard files and no MLmodel: cannot load
            (tmp_path / "junk.txt").write_text("not a model")
            mlflow.log_artifact(str(tmp_path / "junk.txt"), "model")
        broken = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", broken.version)
        wait_for(
            lambda: metric(url, 'churnguard_model_reloads_total{result="failure"}') > failures,
            30,
            "the failed load to be counted",
        )
        assert served_version(url) == good
        assert predict(url).status_code == 200
        log = (predictor["home"] / "predictor.log").read_text()
        assert f"churnguard version {broken.version}" in log and "rejected" in log
        client.set_registered_model_alias(MODEL, "champion", good)


def test_inference_log_feeds_the_drift_command(store: dict[str, Any], predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    with server(store):
        wait_http(f"{url}/v2/health/ready", timeout=60)
        shifted = generate(400, seed=9).drop(columns="churn")
        shifted["monthly_charges"] = (shifted["monthly_charges"] * 2).clip(upper=500).round(2)
        shifted["tenure_months"] = 0
        shifted["num_tickets"] = shifted["num_tickets"] + 5
        for chunk in range(0, 400, 100):
            assert predict(url, shifted.iloc[chunk : chunk + 100].to_dict("records")).status_code == 200
        log_dir = predictor["home"] / "log"
        wait_for(
            lambda: sum(1 for f in log_dir.glob("inference-*.jsonl") for _ in f.open()) >= 400, 10, "the inference log"
        )
        result = train(
            store["url"],
            store["home"] / "drift",
            "drift",
            "--current",
            str(log_dir),
            "--out-dir",
            str(store["home"] / "drift-out"),
        )
        assert result.returncode == 1, result.stdout + result.stderr
        table = result.stdout
        for feature in ("monthly_charges", "tenure_months", "num_tickets"):
            line = next(ln for ln in table.splitlines() if feature in ln)
            assert "yes" in line
