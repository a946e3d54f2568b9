"""The predictor as a real process serving the champion from a real MLflow server: protocols, fidelity,
validation, metrics, and that no input gets a 5xx."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from contract.spec import DatasetSpec
from tests.conftest import DATA_PATH
from tests.support import without_ids

MODEL = "churnguard"


def post(url: str, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, timeout=10, **kw)


def metric_values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def rows(spec: DatasetSpec) -> pd.DataFrame:
    return pd.read_csv(DATA_PATH)[spec.feature_names].sample(200, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def pipeline(champion: dict[str, Any]) -> Any:
    mlflow.set_tracking_uri(champion["tracking_uri"])
    return mlflow.sklearn.load_model(f"models:/{MODEL}/{champion['version']}")


def test_v1_probabilities_are_the_models_own(predictor_url: str, rows: pd.DataFrame, pipeline: Any) -> None:
    r = post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": rows.to_dict("records")})
    assert r.status_code == 200
    got = [p["churn_probability"] for p in r.json()["predictions"]]
    assert np.array_equal(np.array(got), pipeline.predict_proba(rows)[:, 1])


def test_v1_label_and_risk_follow_the_tuned_threshold(
    predictor_url: str, rows: pd.DataFrame, champion_info: dict
) -> None:
    preds = post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": rows.to_dict("records")}).json()[
        "predictions"
    ]
    t = champion_info["threshold"]
    assert 0 < t < 1 and t != 0.5
    for p in preds:
        assert p["churn"] == int(p["churn_probability"] >= t)
        assert (p["risk"] == "high") == (p["churn"] == 1)
    assert {p["risk"] for p in preds} == {"low", "medium", "high"}


def test_v1_arrays_in_spec_order(predictor_url: str, rows: pd.DataFrame) -> None:
    as_objects = post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": rows.head(5).to_dict("records")})
    as_arrays = post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": rows.head(5).values.tolist()})
    assert without_ids(as_arrays.json()) == without_ids(as_objects.json())


def test_v2_infer_both_input_layouts(predictor_url: str, rows: pd.DataFrame, pipeline: Any, spec: DatasetSpec) -> None:
    head = rows.head(7)
    expected = pipeline.predict_proba(head)[:, 1]
    per_feature = {
        "inputs": [
            {
                "name": f.name,
                "shape": [7],
                "datatype": "FP64" if f.type == "float" else "INT64",
                "data": head[f.name].tolist(),
            }
            for f in spec.features
        ]
    }
    tensor = {
        "inputs": [{"name": "input-0", "shape": [7, 5], "datatype": "FP64", "data": head.values.ravel().tolist()}]
    }
    for body in (per_feature, tensor):
        r = post(predictor_url, f"/v2/models/{MODEL}/infer", body)
        assert r.status_code == 200, r.text
        outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
        assert np.array_equal(np.array(outputs["churn_probability"]), expected)
        assert set(outputs["churn"]) <= {0, 1}


def test_v2_metadata_lists_the_spec_inputs(predictor_url: str, spec: DatasetSpec) -> None:
    meta = requests.get(f"{predictor_url}/v2/models/{MODEL}", timeout=10).json()
    assert [i["name"] for i in meta["inputs"]] == spec.feature_names
    assert {i["datatype"] for i in meta["inputs"]} == {"INT64", "FP64"}
    assert [o["name"] for o in meta["outputs"]] == [
        "churn_probability",
        "churn",
        "outside_training_range",
        "prediction_id",
    ]


def test_the_info_route_serves_the_input_json_schema(champion_info: dict[str, Any], spec: DatasetSpec) -> None:
    from contract import columns

    assert champion_info["input_schema"] == columns.json_schema(spec)


def test_inputs_beyond_the_training_range_are_served_but_flagged(
    predictor_url: str, rows: pd.DataFrame, champion_info: dict[str, Any], spec: DatasetSpec
) -> None:
    ranges = champion_info["training_ranges"]
    charges = ranges["monthly_charges"]
    assert charges["min"] <= charges["q01"] <= charges["q50"] <= charges["q99"] <= charges["max"]
    spec_max = spec.feature("monthly_charges").max
    assert spec_max is not None and charges["max"] < spec_max  # valid (spec bounds) yet never seen in training
    inside = rows.head(3).to_dict("records")
    beyond = {**inside[0], "monthly_charges": spec_max, "num_tickets": int(ranges["num_tickets"]["max"]) + 1}
    before = metric_values(predictor_url).get(
        ("churnguard_outside_training_range_total", (("feature", "monthly_charges"),)), 0
    )
    r = post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": [*inside, beyond]})
    assert r.status_code == 200
    flags = [p["outside_training_range"] for p in r.json()["predictions"]]
    assert flags == [[], [], [], ["monthly_charges", "num_tickets"]]
    after = metric_values(predictor_url)[("churnguard_outside_training_range_total", (("feature", "monthly_charges"),))]
    assert after == before + 1
    body = {
        "inputs": [
            {
                "name": f.name,
                "shape": [1],
                "datatype": "FP64" if f.type == "float" else "INT64",
                "data": [beyond[f.name]],
            }
            for f in spec.features
        ]
    }
    v2 = post(predictor_url, f"/v2/models/{MODEL}/infer", {**body})
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
    assert outputs["outside_training_range"] == ["monthly_charges,num_tickets"]


def test_explain_contributions_add_up_to_the_raw_score(predictor_url: str, rows: pd.DataFrame, pipeline: Any) -> None:
    head = rows.head(10)
    r = post(predictor_url, f"/v1/models/{MODEL}:explain", {"instances": head.to_dict("records")})
    assert r.status_code == 200
    raw = pipeline.decision_function(head)
    for e, expected_raw in zip(r.json()["explanations"], raw, strict=True):
        total = e["base_value"] + sum(e["contributions"].values())
        assert math.isclose(total, expected_raw, abs_tol=1e-9)
        assert math.isclose(e["churn_probability"], 1 / (1 + math.exp(-total)), abs_tol=1e-12)


def test_info_is_the_model_card(predictor_url: str, champion: dict[str, Any], spec: DatasetSpec) -> None:
    info = requests.get(f"{predictor_url}/v1/models/{MODEL}/info", timeout=10).json()
    assert info["model_version"] == champion["version"]
    assert DatasetSpec.model_validate(info["spec"]) == spec
    assert info["metrics"] == champion["report"]["metrics"]
    assert info["threshold"] == champion["report"]["threshold"]
    assert [p["name"] for p in info["presets"]] == ["High risk", "Medium risk", "Low risk"]
    assert [p["risk"] for p in info["presets"]] == ["high", "medium", "low"]
    assert len(info["data_sha256"]) == 64 and info["best_params"] and info["training_seconds"] > 0
    assert info["mlflow_url"].endswith(f"/#/models/{MODEL}/versions/{champion['version']}")


def test_presets_score_as_the_card_says(predictor_url: str, champion_info: dict) -> None:
    preds = post(
        predictor_url, f"/v1/models/{MODEL}:predict", {"instances": [p["features"] for p in champion_info["presets"]]}
    )
    assert [p["churn_probability"] for p in preds.json()["predictions"]] == [
        p["churn_probability"] for p in champion_info["presets"]
    ]


@pytest.mark.parametrize(
    ("body", "status", "field", "rule"),
    [
        ({"instances": [{"age": -500}]}, 422, "age", "must be >= 18"),
        ({"instances": [{"age": 40, "tenure_months": 1.5}]}, 422, "tenure_months", "must be an integer"),
        ({"instances": [{"contract_type": 9}]}, 422, "contract_type", "must be one of [0, 1, 2]"),
        ({"instances": [{"colour": "red"}]}, 422, "colour", "unknown field"),
        ({"instances": [{}]}, 422, "num_tickets", "is required"),
        ({"instances": [[1, 2, 3]]}, 422, None, "an array instance needs 5 values"),
        ({"rows": []}, 400, None, None),
        ({"instances": []}, 400, None, None),
    ],
)
def test_client_errors_name_the_field_and_rule(
    predictor_url: str, body: dict, status: int, field: str | None, rule: str | None
) -> None:
    r = post(predictor_url, f"/v1/models/{MODEL}:predict", body)
    assert r.status_code == status
    payload = r.json()
    assert isinstance(payload["error"], str)
    if rule is not None:
        assert any(d["field"] == field and d["rule"].startswith(rule) for d in payload["details"]), payload


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        (b'{"instances": [', {"content-type": "application/json"}, 400),
        (b"age=30", {"content-type": "application/x-www-form-urlencoded"}, 400),
        (b'{"instances": [{"age": NaN}]}', {"content-type": "application/json"}, 400),
        (b"\xff\xfe", {"content-type": "text/plain"}, 400),
    ],
)
def test_malformed_bodies_are_400_without_internals(
    predictor_url: str, data: bytes, headers: dict, status: int
) -> None:
    r = requests.post(f"{predictor_url}/v1/models/{MODEL}:predict", data=data, headers=headers, timeout=10)
    assert r.status_code == status
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_limits_rows_and_body_size(predictor_url: str, rows: pd.DataFrame) -> None:
    many = {"instances": rows.head(1).to_dict("records") * 1001}
    r = post(predictor_url, f"/v1/models/{MODEL}:predict", many)
    assert r.status_code == 413 and "limit is 1000" in r.json()["error"]
    huge = b'{"instances": [' + b" " * 2_100_000 + b"]}"
    r = requests.post(
        f"{predictor_url}/v1/models/{MODEL}:predict",
        data=huge,
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_unknown_model_is_404(predictor_url: str) -> None:
    assert post(predictor_url, "/v1/models/nope:predict", {"instances": []}).status_code == 404


def test_metrics_move_as_expected(predictor_url: str, rows: pd.DataFrame) -> None:
    before = metric_values(predictor_url)
    post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": rows.head(20).to_dict("records")})
    post(predictor_url, f"/v1/models/{MODEL}:predict", {"instances": [{"age": 1}]})
    after = metric_values(predictor_url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    version = next(dict(k[1])["model_version"] for k in after if k[0] == "churnguard_model_info")
    scored = delta("churnguard_predictions_total", model_version=version, outcome="churn") + delta(
        "churnguard_predictions_total", model_version=version, outcome="no_churn"
    )
    assert scored == 20
    assert delta("churnguard_prediction_errors_total", reason="validation") == 1
    route = "/v1/models/{model}:predict"
    assert delta("churnguard_http_requests_total", route=route, method="POST", status_class="2xx") == 1
    assert delta("churnguard_http_requests_total", route=route, method="POST", status_class="4xx") == 1
    assert delta("churnguard_churn_probability_count", model_version=version) == 20
    assert delta("churnguard_feature_value_count", feature="age") == 20
    assert after[("churnguard_model_loaded", ())] == 1
    for step in ("preprocess", "predict", "postprocess"):  # KServe's own, as its Model.__call__ observes them
        assert delta(f"request_{step}_seconds_count", model_name=MODEL) == (2 if step != "postprocess" else 1), step
    routes = {dict(k[1])["route"] for k in after if k[0] == "churnguard_http_requests_total"}
    assert route in routes and not any(MODEL in r for r in routes)  # templates, never raw paths


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=6),
    max_leaves=12,
)
FIELDS = st.sampled_from(["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets", "x"])
INSTANCE = st.dictionaries(FIELDS, JSON | st.integers(-1000, 1000) | st.floats(-1e3, 1e3), max_size=6)
BODY = st.one_of(
    JSON,
    st.fixed_dictionaries({"instances": st.lists(INSTANCE | st.lists(JSON, max_size=6), max_size=5)}),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=BODY, route=st.sampled_from([":predict", ":explain"]))
def test_generated_requests_never_get_5xx(predictor_url: str, body: Any, route: str) -> None:
    r = requests.post(
        f"{predictor_url}/v1/models/{MODEL}{route}",
        data=json.dumps(body),
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert r.status_code < 500, (body, r.text)


@contextmanager
def two_worker_predictor(tracking_uri: str, home: Path) -> Iterator[dict[str, Any]]:
    """`python -m predictor --workers 2`, returned once both workers have loaded the model."""
    import time

    from tests.support import PYTHON, free_port, running

    port = free_port()
    url, log = f"http://127.0.0.1:{port}", home / "predictor.log"
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "PROMETHEUS_MULTIPROC_DIR": str(home / "metrics")}
    (home / "metrics").mkdir()
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port), "--workers", "2"]
    with running(cmd, env=env, log=log, ready_url=f"{url}/v2/health/ready", timeout=120) as proc:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and loads(log) < 2:
            time.sleep(0.2)
        assert loads(log) == 2, log.read_text()[-3000:]
        yield {"url": url, "pid": proc.pid, "log": log, "metrics": home / "metrics"}


def loads(log: Path) -> int:
    """Model loads so far: each worker loads its own model and says so once."""
    return log.read_text().count(f"serving {MODEL} version")


@pytest.fixture(scope="module")
def two_workers(champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with two_worker_predictor(champion["tracking_uri"], tmp_path_factory.mktemp("two-workers")) as server:
        yield server


def test_two_workers_serve_and_count_every_request(two_workers: dict[str, Any], rows: pd.DataFrame) -> None:
    url, n = two_workers["url"], 40
    for i in range(n):
        r = post(url, f"/v1/models/{MODEL}:predict", {"instances": rows.iloc[[i]].to_dict("records")})
        assert r.status_code == 200
    for _ in range(4):  # every scrape sums both workers, whichever one answers it
        values = metric_values(url)
        scored = sum(v for (name, _), v in values.items() if name == "churnguard_predictions_total")
        assert scored == n
        assert values[("churnguard_model_loaded", ())] == 1
    pids = {dict(k[1]).get("pid") for k in metric_values(url)}
    assert pids == {None}  # no per-process series leak into the output


def test_serving_processes_leave_pyarrow_out(two_workers: dict[str, Any]) -> None:
    """pandas would import pyarrow (~30 MB per process): the supervisor and its forked workers all skip it."""
    import psutil

    supervisor = psutil.Process(two_workers["pid"])
    workers = supervisor.children()
    assert len(workers) == 2
    maps = {p.pid: Path(f"/proc/{p.pid}/maps").read_text() for p in [supervisor, *workers]}
    assert [pid for pid, m in maps.items() if "libarrow" in m] == []


def test_a_killed_worker_is_replaced_and_loads_its_own_model(two_workers: dict[str, Any], rows: pd.DataFrame) -> None:
    import signal
    import time

    import psutil

    supervisor, log = psutil.Process(two_workers["pid"]), two_workers["log"]
    assert loads(log) == 2
    victim = supervisor.children()[0].pid
    assert list(two_workers["metrics"].glob(f"gauge_live*_{victim}.db"))  # its live gauges (model loaded, ...)
    psutil.Process(victim).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and loads(log) < 3:
        time.sleep(0.5)
    assert loads(log) == 3, log.read_text()[-3000:]
    assert victim not in {p.pid for p in supervisor.children()} and len(supervisor.children()) == 2
    assert not list(two_workers["metrics"].glob(f"gauge_live*_{victim}.db"))  # ... left with it
    for _ in range(20):  # whichever worker answers, it serves
        r = post(two_workers["url"], f"/v1/models/{MODEL}:predict", {"instances": rows.iloc[[0]].to_dict("records")})
        assert r.status_code == 200, r.text
    assert metric_values(two_workers["url"])[("churnguard_model_loaded", ())] == 1


def test_sigterm_stops_the_supervisor_and_every_worker(champion: dict[str, Any], tmp_path: Path) -> None:
    """A rolling update's SIGTERM ends every worker gracefully, then the supervisor, with exit code 0."""
    import signal

    import psutil

    with two_worker_predictor(champion["tracking_uri"], tmp_path) as server:
        supervisor = psutil.Process(server["pid"])
        workers = supervisor.children()
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
        text = server["log"].read_text()
        assert text.count("Terminated child process") == 2 and "force terminating" not in text, text[-2000:]
