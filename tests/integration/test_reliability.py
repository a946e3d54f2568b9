"""Reliability and security of the predictor, probed as an attacker and a careless client would: thousands of
generated bad requests (zero 5xx), the model repository routes, clients that disconnect, gzip, a stalled loader,
corrupt and wrong-shaped versions, alias moves under load (zero failed requests) and RSS over a soak."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from contract.spec import DatasetSpec
from tests.integration.badrequests import Generator
from tests.support import PYTHON, free_port, metric, running, serving_mlflow, train, wait_for, wait_http, without_ids

MODEL = "churnguard"
ROW = {"age": 40, "tenure_months": 12, "monthly_charges": 50.5, "contract_type": 0, "num_tickets": 2}
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
GENERATED = 3000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An MLflow server of this module's own (its aliases move) with two trained versions; v1 is the champion."""
    home = tmp_path_factory.mktemp("reliability")
    with serving_mlflow(home) as url:
        grid = json.dumps({"n_estimators": [60], "max_depth": [2], "learning_rate": [0.1], "subsample": [1.0]})
        for i in (1, 2):  # the second passes whatever it scores against the first: the tests move the alias
            env = {
                "CHURN_GRID": grid,
                "CHURN_SEED": str(i),
                "CHURN_GATE_MAX_DROP": "1",
                "CHURN_BOOTSTRAP_ROUNDS": "100",
            }
            result = train(url, home / f"train{i}", env=env)
            assert result.returncode == 0, result.stdout + result.stderr
        client = MlflowClient(url)
        client.set_registered_model_alias(MODEL, "champion", "1")
        yield {"url": url, "home": home, "client": client}


def start_predictor(store: dict[str, Any], home: Path, **env: str):  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {"MLFLOW_TRACKING_URI": store["url"], "CHURN_RELOAD_INTERVAL": "1", "CHURN_TRACING": "false", **env}
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    return url, running(cmd, env=full_env, log=home / "predictor.log", ready_url=f"{url}/v2/health/ready", timeout=90)


@pytest.fixture(scope="module")
def predictor(store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("reliability-predictor")
    url, proc = start_predictor(store, home)
    with proc as p:
        yield {"url": url, "home": home, "pid": p.pid}


def log_of(p: dict[str, Any]) -> str:
    return (p["home"] / "predictor.log").read_text(errors="replace")


def v2_body(row: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": f.name, "shape": [1], "datatype": "FP64" if f.type == "float" else "INT64", "data": [row[f.name]]}
            for f in spec.features
        ]
    }


# -- generated bad requests ---------------------------------------------------------------------------------------
def test_thousands_of_generated_bad_requests_get_no_5xx(predictor: dict[str, Any], spec: DatasetSpec) -> None:
    url = predictor["url"]
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    failures = []
    with requests.Session() as http:
        for i, req in zip(range(GENERATED), Generator(spec, MODEL), strict=False):
            try:
                r = http.post(url + req.path, data=req.body, headers=req.headers, timeout=30)
            except requests.ConnectionError as exc:
                raise AssertionError(f"#{i} {exc} <- {req}") from exc
            statuses[r.status_code] += 1
            kinds[req.kind] += 1
            if r.status_code >= 500:
                failures.append(f"#{i} {r.status_code} {r.text[:200]} <- {req}")
            elif r.status_code >= 400:
                assert "error" in r.json(), f"#{i} {r.status_code} {r.text[:200]} <- {req}"
    print(f"\n{sum(statuses.values())} generated requests {dict(kinds)}: statuses {dict(sorted(statuses.items()))}")
    assert failures == [], "\n".join(failures[:20])
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > GENERATED * 0.8  # they really were bad
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    assert "Traceback" not in log_of(predictor), log_of(predictor)[-3000:]
    assert metric(url, 'churnguard_http_requests_total{method="POST",route="other"') == 0


BIG = 1180591620717411303424  # 2**70


def raw_v2(inputs: str) -> bytes:
    return ('{"inputs":[' + inputs + "]}").encode()


def feature_inputs(spec: DatasetSpec, **override: str) -> str:
    out = []
    for f in spec.features:
        t = "FP64" if f.type == "float" else "INT64"
        out.append(override.get(f.name, f'{{"name":"{f.name}","shape":[1],"datatype":"{t}","data":[{ROW[f.name]}]}}'))
    return ",".join(out)


@pytest.mark.parametrize(
    ("case", "field", "rule"),
    [
        ("int beyond 64 bits", "age", "INT64 data must be whole numbers within 64 bits"),
        ("lone surrogate as raw bytes", None, "must be JSON in UTF-8 (no lone surrogates)"),
        ("lone surrogate escaped in a name", None, "must be JSON in UTF-8 (no lone surrogates)"),
        ("lone surrogate as BYTES data", None, "must be JSON in UTF-8 (no lone surrogates)"),
        ("[n,5] tensor with the wrong data length", "x", "data must hold 10 values, flat or nested as shape [2, 5]"),
        ("[n,5] tensor with strings under FP64", "x", "FP64 data must be numbers"),
        ("[n,5] tensor with 2**70 under INT64", "x", "INT64 data must be whole numbers within 64 bits"),
        ("Inference-Header-Content-Length abc", "Inference-Header-Content-Length", "must be a non-negative integer"),
        ("shape [2] with one value", "age", "data must hold 2 values, flat or nested as shape [2]"),
        ("shape []", "age", "shape must be a non-empty list of non-negative integers"),
        ("shape [1,1,1]", "age", "shape must be [n] or [n, 1]"),
        ("shape [2**70]", "age", "shape must be a non-empty list of non-negative integers"),
        ("datatype FOO", "age", "datatype must be INT64, as the model's metadata says"),
        ("datatype empty", "age", "datatype must be INT64, as the model's metadata says"),
        ("datatype BOOL", "age", "datatype must be INT64, as the model's metadata says"),
        ("datatype UINT8", "age", "datatype must be INT64, as the model's metadata says"),
        ("two inputs named age", "age", "input given more than once"),
        ("data [[40]] under shape [1]", "age", "data must hold 1 values, flat or nested as shape [1]"),
        ("inputs of different lengths", "tenure_months", "rows in this input"),
    ],
)
def test_each_reported_v2_fault_is_a_4xx_naming_input_and_rule(
    predictor: dict[str, Any], spec: DatasetSpec, case: str, field: str, rule: str
) -> None:
    age = '{"name":"age","shape":%s,"datatype":"%s","data":%s}'
    headers = {"Content-Type": "application/json"}
    bodies = {
        "int beyond 64 bits": raw_v2(feature_inputs(spec, age=age % ("[1]", "INT64", f"[{BIG}]"))),
        "lone surrogate as raw bytes": raw_v2(feature_inputs(spec)).replace(b'"age"', b'"\xed\xa0\x80"', 1),
        "lone surrogate escaped in a name": raw_v2(feature_inputs(spec)).replace(b'"age"', b'"\\ud800"', 1),
        "lone surrogate as BYTES data": raw_v2(
            feature_inputs(
                spec, contract_type='{"name":"contract_type","shape":[1],"datatype":"BYTES","data":["\\ud800"]}'
            )
        ),
        "[n,5] tensor with the wrong data length": raw_v2(
            '{"name":"x","shape":[2,5],"datatype":"FP64","data":[1,2,3]}'
        ),
        "[n,5] tensor with strings under FP64": raw_v2(
            '{"name":"x","shape":[1,5],"datatype":"FP64","data":["a","b","c","d","e"]}'
        ),
        "[n,5] tensor with 2**70 under INT64": raw_v2(
            f'{{"name":"x","shape":[1,5],"datatype":"INT64","data":[{BIG},1,1,1,1]}}'
        ),
        "Inference-Header-Content-Length abc": raw_v2(feature_inputs(spec)),
        "shape [2] with one value": raw_v2(feature_inputs(spec, age=age % ("[2]", "INT64", "[40]"))),
        "shape []": raw_v2(feature_inputs(spec, age=age % ("[]", "INT64", "[40]"))),
        "shape [1,1,1]": raw_v2(feature_inputs(spec, age=age % ("[1,1,1]", "INT64", "[40]"))),
        "shape [2**70]": raw_v2(feature_inputs(spec, age=age % (f"[{BIG}]", "INT64", "[40]"))),
        "datatype FOO": raw_v2(feature_inputs(spec, age=age % ("[1]", "FOO", "[40]"))),
        "datatype empty": raw_v2(feature_inputs(spec, age=age % ("[1]", "", "[40]"))),
        "datatype BOOL": raw_v2(feature_inputs(spec, age=age % ("[1]", "BOOL", "[true]"))),
        "datatype UINT8": raw_v2(feature_inputs(spec, age=age % ("[1]", "UINT8", "[40]"))),
        "two inputs named age": raw_v2(feature_inputs(spec) + "," + age % ("[1]", "INT64", "[41]")),
        "data [[40]] under shape [1]": raw_v2(feature_inputs(spec, age=age % ("[1]", "INT64", "[[40]]"))),
        "inputs of different lengths": raw_v2(
            feature_inputs(spec, tenure_months='{"name":"tenure_months","shape":[2],"datatype":"INT64","data":[1,2]}')
        ),
    }
    if case == "Inference-Header-Content-Length abc":
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "abc"}
    r = requests.post(predictor["url"] + V2, data=bodies[case], headers=headers, timeout=10)
    assert 400 <= r.status_code < 500, r.text
    assert {"field": field, "rule": rule} in [{"field": d["field"], "rule": d["rule"]} for d in r.json()["details"]]


def test_model_metadata_datatypes_are_the_ones_enforced(predictor: dict[str, Any], spec: DatasetSpec) -> None:
    meta = requests.get(f"{predictor['url']}/v2/models/{MODEL}", timeout=10).json()
    declared = {i["name"]: i["datatype"] for i in meta["inputs"]}
    body = {"inputs": [{"name": n, "shape": [1], "datatype": t, "data": [ROW[n]]} for n, t in declared.items()]}
    assert requests.post(predictor["url"] + V2, json=body, timeout=10).status_code == 200
    for name, datatype in declared.items():
        other = "FP64" if datatype != "FP64" else "INT64"
        wrong = {"inputs": [{**i, "datatype": other} if i["name"] == name else i for i in body["inputs"]]}
        r = requests.post(predictor["url"] + V2, json=wrong, timeout=10)
        assert r.status_code == 400 and r.json()["details"][0]["field"] == name, r.text


def test_binary_v2_is_checked_against_its_declared_sizes(predictor: dict[str, Any], spec: DatasetSpec) -> None:
    inputs, raw = [], b""
    for f in spec.features:
        fmt, t = ("d", "FP64") if f.type == "float" else ("q", "INT64")
        blob = struct.pack(f"<{fmt}", ROW[f.name])
        inputs.append({"name": f.name, "shape": [1], "datatype": t, "parameters": {"binary_data_size": len(blob)}})
        raw += blob
    head = json.dumps({"inputs": inputs}).encode()

    def send(body: bytes, length: int | str) -> requests.Response:
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(length)}
        return requests.post(predictor["url"] + V2, data=body, headers=headers, timeout=10)

    good = send(head + raw, len(head))
    as_json = requests.post(predictor["url"] + V2, json=v2_body(ROW, spec), timeout=10)
    assert good.status_code == 200, good.text
    assert good.json()["outputs"][0]["data"] == as_json.json()["outputs"][0]["data"]
    short = send(head + raw[:-3], len(head))
    assert short.status_code == 400 and "declare 40 bytes" in short.json()["error"], short.text
    lying = json.loads(head)
    lying["inputs"][0]["parameters"]["binary_data_size"] = 4
    lying_head = json.dumps(lying).encode()
    r = send(lying_head + raw, len(lying_head))
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "age", r.text
    assert send(head + raw, len(head) + 10**6).status_code == 400


# -- transport: gzip, disconnects, body limits ----------------------------------------------------------------------
def test_gzip_bodies_are_inflated_and_lies_about_encoding_refused(predictor: dict[str, Any]) -> None:
    url, body = predictor["url"] + V1, json.dumps({"instances": [ROW]}).encode()
    plain = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    zipped = requests.post(
        url, data=gzip.compress(body), headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert plain.status_code == zipped.status_code == 200
    assert without_ids(zipped.json()) == without_ids(plain.json())
    labelled = requests.post(url, data=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert labelled.status_code == 400 and "not gzip" in labelled.json()["error"]
    other = requests.post(url, data=body, headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert other.status_code == 415
    bomb = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces in ~50 KB
    r = requests.post(url, data=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "once inflated" in r.json()["error"]


def test_a_body_sent_without_a_length_is_capped_too(predictor: dict[str, Any]) -> None:
    """Chunked bodies (no Content-Length to refuse up front) over CHURN_MAX_BODY_BYTES get the same 413 body on the
    hot route and on a FastAPI route, and nothing is counted as a 5xx."""

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(300):
            yield b" " * 10_000
        yield b"]}"

    url = predictor["url"]
    for path in (V1, "/v1/models/churnguard/feedback"):
        r = requests.post(url + path, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 413 and "request body over" in r.json()["error"], (path, r.status_code, r.text[:300])
    assert metric(url, 'churnguard_prediction_errors_total{reason="internal"}') == 0


def test_an_access_log_format_is_refused_with_the_reason() -> None:
    """KServe's --access_log_format needs its optional asgi-logger package, which is not installed: said at once
    (exit 2), not an ImportError once serving."""
    import subprocess

    out = subprocess.run(
        [PYTHON, "-m", "predictor", "--access_log_format", "%(h)s"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "asgi-logger" in out.stderr, out.stderr[-2000:]


def test_a_client_that_stops_mid_body_is_neither_a_5xx_nor_an_error_log(predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    port = int(url.rsplit(":", 1)[1])
    before = metric(url, 'churnguard_prediction_errors_total{reason="internal"}')
    for path in (V1, V2, V1):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                '{"instances": ['.encode()
            )
            time.sleep(0.3)
    time.sleep(0.5)
    text = requests.get(f"{url}/metrics", timeout=10).text
    assert not [
        ln
        for ln in text.splitlines()
        if "churnguard_http_requests_total" in ln and 'POST",route="/v' in ln and '"5xx"' in ln
    ]
    assert metric(url, 'churnguard_prediction_errors_total{reason="internal"}') == before
    log = log_of(predictor)
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


# -- the model repository routes ----------------------------------------------------------------------------------
def test_model_repository_routes_are_off_by_default(predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    for action in ("unload", "load"):
        r = requests.post(f"{url}/v2/repository/models/{MODEL}/{action}", timeout=10)
        assert r.status_code == 404 and "CHURN_MODEL_REPOSITORY" in r.json()["error"]
    assert not [p for p in requests.get(f"{url}/openapi.json", timeout=10).json()["paths"] if "/repository/" in p]
    assert requests.post(url + V1, json={"instances": [ROW]}, timeout=10).status_code == 200


def test_when_turned_on_an_unload_is_undone_within_one_reload_interval(store: dict[str, Any], tmp_path: Path) -> None:
    url, proc = start_predictor(store, tmp_path, CHURN_MODEL_REPOSITORY="true", CHURN_RELOAD_INTERVAL="2")
    with proc:
        r = requests.post(f"{url}/v2/repository/models/{MODEL}/unload", timeout=10)
        assert r.status_code == 200
        unloaded = time.monotonic()
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        assert metric(url, "churnguard_model_loaded ") == 0
        wait_http(f"{url}/v2/health/ready", timeout=10)
        back = time.monotonic() - unloaded
        assert requests.post(url + V1, json={"instances": [ROW]}, timeout=10).status_code == 200
        requests.post(f"{url}/v2/repository/models/{MODEL}/unload", timeout=10)
        started = time.monotonic()
        assert requests.post(f"{url}/v2/repository/models/{MODEL}/load", timeout=30).status_code == 200
        load = time.monotonic() - started  # the same work the loader does when it serves the champion again
        assert back <= 2.0 + load + 1.0, (back, load)  # one reload interval, the load, the probes' polling
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200  # load: at once
        assert requests.post(f"{url}/v2/repository/models/other/load", timeout=10).status_code == 404
        assert requests.post(f"{url}/v2/repository/models/other/unload", timeout=10).status_code == 404


def test_liveness_fails_while_the_loader_hangs_and_recovers_after(store: dict[str, Any], tmp_path: Path) -> None:
    """A registry that accepts connections and never answers: the loader's attempt hangs, so liveness (which
    Kubernetes restarts on) goes 503 once the attempt outlives CHURN_LOADER_STALL_SECONDS."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{hole.getsockname()[1]}",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
        "CHURN_LOADER_STALL_SECONDS": "2",
        "CHURN_TRACING": "false",
    }
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=env, log=tmp_path / "predictor.log", ready_url=f"{url}/v2/health/live", timeout=90):
        wait_http(f"{url}/v2/health/live", timeout=15, status=503)
        assert requests.get(f"{url}/", timeout=5).status_code == 503  # KServe's other liveness route agrees
        assert "restart" in requests.get(f"{url}/v2/health/live", timeout=5).text
        hole.close()  # the registry is gone for good: attempts now fail fast, the loader is alive again
        wait_http(f"{url}/v2/health/live", timeout=30)
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 503


# -- registry faults ----------------------------------------------------------------------------------------------
def register_altered(store: dict[str, Any], tmp_path: Path, alter: Any) -> str:
    """A copy of version 1's model folder, changed by `alter(folder)`, registered as a new version."""
    mlflow.set_tracking_uri(store["url"])
    src = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path / "src")))
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    alter(folder)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
    mv = store["client"].create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return str(mv.version)


def truncate_model(folder: Path) -> None:
    """Both model files cut short: the scorer file the GBM is served from and the pipeline behind it."""
    for model in [folder / "extra_files" / "scorer.json", *(p for p in folder.rglob("*") if p.suffix == ".skops")]:
        model.write_bytes(model.read_bytes()[:200])


def alter_the_trees(folder: Path) -> None:
    """A scorer file that parses but no longer scores like the pipeline (the first tree's values nudged by 1e-9,
    which every row passes through): the smoke test on the presets must refuse it."""
    path = folder / "extra_files" / "scorer.json"
    scorer = json.loads(path.read_text())
    first_tree = range(scorer["offset"][0], scorer["offset"][1])
    scorer["value"] = [v + 1e-9 if i in first_tree else v for i, v in enumerate(scorer["value"])]
    path.write_text(json.dumps(scorer))


def drop_a_feature(folder: Path) -> None:
    spec = folder / "extra_files" / "spec.yaml"
    data = DatasetSpec.from_yaml(spec.read_text()).model_dump(mode="json", exclude_defaults=True)
    data["features"] = data["features"][:-1]
    spec.write_text(DatasetSpec.model_validate(data).to_yaml())


@pytest.mark.parametrize(
    "alter", [truncate_model, alter_the_trees, drop_a_feature], ids=["corrupt", "altered-trees", "wrong-shaped"]
)
def test_corrupt_and_wrong_shaped_versions_never_serve(
    store: dict[str, Any], predictor: dict[str, Any], tmp_path: Path, alter: Any
) -> None:
    url = predictor["url"]
    bad = register_altered(store, tmp_path, alter)
    failures = metric(url, 'churnguard_model_reloads_total{result="failure"}')
    store["client"].set_registered_model_alias(MODEL, "champion", bad)
    try:
        wait_for(
            lambda: metric(url, 'churnguard_model_reloads_total{result="failure"}') > failures, 30, "the rejection"
        )
        r = requests.post(url + V1, json={"instances": [ROW]}, timeout=10)
        assert r.status_code == 200 and r.json()["model_version"] == "1"
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        assert f"churnguard version {bad}" in log_of(predictor)
        if alter is alter_the_trees:
            assert "smoke test on the presets disagrees with the probabilities training recorded" in log_of(predictor)
    finally:
        store["client"].set_registered_model_alias(MODEL, "champion", "1")


def test_alias_moves_under_load_fail_no_request(store: dict[str, Any], predictor: dict[str, Any]) -> None:
    url = predictor["url"]
    stop = threading.Event()
    results: list[tuple[int, str]] = []

    def load() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                r = http.post(url + V1, json={"instances": [ROW] * 5}, timeout=10)
                results.append((r.status_code, r.json().get("model_version", "") if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for version in ("2", "1", "2", "1"):
            store["client"].set_registered_model_alias(MODEL, "champion", version)
            wait_for(lambda v=version: bool(results) and results[-1][1] == v, 30, f"version {version} served")
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failed = [r for r in results if r[0] != 200]
    served = Counter(v for s, v in results if s == 200)
    print(f"\n{len(results)} requests during 4 alias moves: {dict(served)}, failed {len(failed)}")
    assert failed == []
    assert set(served) == {"1", "2"}


# -- soak ---------------------------------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_rss_stays_flat_over_a_soak(predictor: dict[str, Any], spec: DatasetSpec) -> None:
    """20,000 requests (single rows, batches, V2, bad ones) after a warm-up: RSS may not keep growing."""
    url, pid = predictor["url"], predictor["pid"]
    batch = {"instances": [ROW] * 200}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def burst(n: int, seed: int) -> None:
        seen: Counter[int] = Counter()  # one per thread, added up after: `+=` on a shared Counter can lose counts
        bad = iter(Generator(spec, MODEL, seed=seed))
        with requests.Session() as http:
            for i in range(n):
                if i % 50 == 0:
                    r = http.post(url + V1, json=batch, timeout=10)
                elif i % 5 == 0:
                    req = next(bad)
                    r = http.post(url + req.path, data=req.body, headers=req.headers, timeout=10)
                elif i % 2:
                    r = http.post(url + V2, json=v2_body(ROW, spec), timeout=10)
                else:
                    r = http.post(url + V1, json={"instances": [ROW]}, timeout=10)
                seen[r.status_code] += 1
        with lock:
            statuses.update(seen)

    def soak(n: int) -> None:
        threads = [threading.Thread(target=burst, args=(n // 4, seed)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    soak(4000)  # warm-up: caches, allocator arenas, the drift window fill
    start = rss_mib(pid)
    soak(10_000)
    middle = rss_mib(pid)
    soak(10_000)
    end = rss_mib(pid)
    print(f"\nRSS after warm-up {start:.1f} MiB, +10k requests {middle:.1f} MiB, +20k {end:.1f} MiB")
    assert sum(statuses.values()) == 24_000 and not [s for s in statuses if s >= 500], statuses
    assert end - start < 15, (start, middle, end)
    assert end - middle < 8, (start, middle, end)  # not still climbing
    assert os.path.exists(f"/proc/{pid}")
