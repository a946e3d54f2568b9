"""Bring your own churn CSV: a telco-shaped data set (string categories with spaces and parentheses, a 0/1
category, a float with blank cells, an id column, a Yes/No target) goes from `init-spec` to a registered champion,
a predictor answering V1, V2 and explain, and the UI scoring a row, with nothing written by hand."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contract.spec import DatasetSpec
from tests.datasets import telco_like
from tests.support import PYTHON, free_port, running, train, wait_for

MODEL = "telco-churn"


@pytest.fixture(scope="module")
def telco(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("telco")
    data = home / "telco-churn.csv"
    frame = telco_like(2500, seed=5)
    frame.to_csv(data, index=False)
    spec_path = home / "telco.spec.yaml"
    drafted = train(mlflow_server, home, "init-spec", "--data", str(data), "--target", "Churn", "--out", str(spec_path))
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    assert "review:" in drafted.stderr and "customerID" in drafted.stderr
    grid = '{"n_estimators": [100], "max_depth": [3], "learning_rate": [0.1], "subsample": [1.0]}'
    # a gate for this data set's level (a telco table is noisier than the committed one), as its owner would set
    env = {
        "CHURN_GRID": grid,
        "CHURN_BOOTSTRAP_ROUNDS": "100",
        "CHURN_GATE_MIN_F1": "0.6",
        "CHURN_GATE_MIN_ROC_AUC": "0.8",
    }
    run = train(mlflow_server, home, "run", "--data", str(data), "--spec", str(spec_path), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"registered {MODEL} version 1 and moved alias 'champion' to it" in run.stdout
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    penv = {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "CHURN_MODEL_NAME": MODEL,
        "CHURN_TRACING": "false",
        "CHURN_INFERENCE_LOG_DIR": str(home / "inference-log"),
    }
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=penv, log=home / "predictor.log", ready_url=f"{url}/v2/health/ready", timeout=120):
        yield {
            "url": url,
            "frame": frame,
            "spec": DatasetSpec.load(spec_path),
            "spec_path": spec_path,
            "home": home,
            "tracking_uri": mlflow_server,
        }


def rows(telco: dict[str, Any], n: int) -> list[dict[str, Any]]:
    spec: DatasetSpec = telco["spec"]
    out = []
    for record in telco["frame"][spec.feature_names].head(n).to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return out


def test_the_drafted_spec_describes_the_csv(telco: dict[str, Any]) -> None:
    spec: DatasetSpec = telco["spec"]
    assert spec.id_columns == ("customerID",) and spec.target.positive == "Yes"
    assert spec.feature("TotalCharges").nullable
    assert "Bank transfer (automatic)" in (spec.feature("PaymentMethod").values or ())


def test_v1_v2_and_explain_answer_for_the_new_data_set(telco: dict[str, Any]) -> None:
    url, spec = telco["url"], telco["spec"]
    instances = rows(telco, 40)
    assert any(r["TotalCharges"] is None for r in instances)  # blank cells go through as missing
    v1 = requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=30)
    assert v1.status_code == 200, v1.text
    p1 = [p["churn_probability"] for p in v1.json()["predictions"]]
    meta = requests.get(f"{url}/v2/models/{MODEL}", timeout=10).json()
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types["PaymentMethod"] == "BYTES" and types["SeniorCitizen"] == "INT64" and types["tenure"] == "INT64"
    inputs = [
        {"name": f.name, "shape": [len(instances)], "datatype": types[f.name], "data": [r[f.name] for r in instances]}
        for f in spec.features
    ]
    v2 = requests.post(f"{url}/v2/models/{MODEL}/infer", json={"inputs": inputs}, timeout=30)
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == p1
    explained = requests.post(f"{url}/v1/models/{MODEL}:explain", json={"instances": instances[:3]}, timeout=30)
    assert explained.status_code == 200, explained.text
    for e, p in zip(explained.json()["explanations"], p1, strict=False):
        assert set(e["contributions"]) == set(spec.feature_names)
        assert math.isclose(1 / (1 + math.exp(-e["raw_score"])), p, rel_tol=1e-6)


def test_the_ui_renders_the_new_form_and_scores_a_row(telco: dict[str, Any], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.integration.ui_support import CHROMIUM, CHROMIUM_ARGS, NGINX, running_nginx

    if not (os.access(NGINX, os.X_OK) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"needs nginx at {NGINX} and chromium at {CHROMIUM} (make system-deps)")
    spec: DatasetSpec = telco["spec"]
    with running_nginx(tmp_path, upstream=telco["url"]) as ui, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{ui}/#predict")
        page.wait_for_selector("#status[data-state='ready']")
        page.wait_for_selector("#fields .field", state="attached")
        assert page.locator("#fields .field").count() == len(spec.features)
        page.click("[data-preset='0']")
        page.click("#predict-submit")
        page.wait_for_selector("#result[data-state='done']")
        shown = float(page.get_attribute("#probability", "data-probability") or "nan")
        info = requests.get(f"{telco['url']}/v1/models/{MODEL}/info", timeout=10).json()
        preset = info["presets"][0]
        assert math.isclose(shown, preset["churn_probability"], rel_tol=1e-12)
        browser.close()


def test_the_inference_log_round_trips_missing_values_into_the_drift_report(telco: dict[str, Any]) -> None:
    url, home = telco["url"], telco["home"]
    instances = rows(telco, 300)
    blanks = sum(r["TotalCharges"] is None for r in instances)
    assert blanks > 0
    r = requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=30)
    assert r.status_code == 200
    log_dir = home / "inference-log"
    ids = {p["prediction_id"] for p in r.json()["predictions"]}

    def ours() -> list[dict[str, Any]]:  # this request's lines (a thread writes them after the answer)
        records = [json.loads(line) for f in log_dir.glob("*.jsonl") for line in f.open()]
        return [rec["features"] for rec in records if rec["prediction_id"] in ids]

    wait_for(lambda: len(ours()) == 300, 10, "the request's 300 rows in the inference log")
    assert sum(row["TotalCharges"] is None for row in ours()) == blanks  # null stays null, never "None"
    out = home / "drift"
    result = train(
        telco["tracking_uri"],
        home,
        "drift",
        "--current",
        str(log_dir),
        "--spec",
        str(telco["spec_path"]),
        "--out-dir",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr  # the same population: no drift
    report = json.loads(next(out.glob("*.json")).read_text())
    assert "TotalCharges" in json.dumps(report)
