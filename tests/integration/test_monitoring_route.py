"""The monitoring route and the model card's links on a real predictor serving the champion: the drift window as
JSON equals the rows sent, binned by the champion's own reference, and what /metrics says about the same window."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from contract import artifacts, reference
from contract.spec import DatasetSpec
from tests.conftest import DATA_PATH
from tests.support import PYTHON, free_port, metric, running

MODEL = "churnguard"
WINDOW, MIN_ROWS = 100, 50  # MIN_ROWS: DriftMonitor's default
FEW, MORE = 30, 120  # below MIN_ROWS; then past the window, so it slides
UI_URL = "http://mlflow.example:5000/"  # trailing slash: the links must not double it
GRAFANA_URL = "http://grafana.example:3000/d/churnguard/churnguard"


@pytest.fixture(scope="module")
def monitored(champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own predictor, so its drift window holds exactly the rows sent here."""
    home = tmp_path_factory.mktemp("monitoring-route")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "CHURN_DRIFT_WINDOW": str(WINDOW),
        "CHURN_MLFLOW_UI_URL": UI_URL,
        "CHURN_GRAFANA_URL": GRAFANA_URL,
        "CHURN_TRACING": "false",
    }
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=env, log=home / "predictor.log", ready_url=f"{url}/v2/health/ready", timeout=90):
        yield url


@pytest.fixture(scope="module")
def champion_reference(champion: dict[str, Any]) -> dict[str, Any]:
    """The reference statistics logged with the served version (what the predictor bins by)."""
    mlflow.set_tracking_uri(champion["tracking_uri"])
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{champion['version']}", dst_path=tmp)
        ref: dict[str, Any] = artifacts.read(Path(local)).reference
    return ref


def monitoring(url: str) -> dict[str, Any]:
    r = requests.get(f"{url}/v1/models/{MODEL}/monitoring", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def snapshots(monitored: str, spec: DatasetSpec) -> dict[str, Any]:
    """The monitoring JSON before any traffic, after FEW rows, and after FEW + MORE rows (sent in batches)."""
    rows = pd.read_csv(DATA_PATH)[spec.feature_names].sample(FEW + MORE, random_state=11).reset_index(drop=True)
    out: dict[str, Any] = {"rows": rows, "empty": monitoring(monitored)}
    for name, part in (("few", rows.iloc[:FEW]), ("full", rows.iloc[FEW:])):
        for start in range(0, len(part), 25):
            batch = part.iloc[start : start + 25].to_dict("records")
            r = requests.post(f"{monitored}/v1/models/{MODEL}:predict", json={"instances": batch}, timeout=10)
            assert r.status_code == 200, r.text
        out[name] = monitoring(monitored)
    return out


def expected_shares(rows: pd.DataFrame, ref: dict[str, Any], spec: DatasetSpec) -> dict[str, list[float]]:
    """Each feature's share of `rows` in each reference bin, binned here from the reference itself."""
    out = {}
    for f in spec.features:
        values = rows[f.name].to_numpy()
        counts = (
            reference.bin_counts(values.astype(float), ref[f.name]["edges"])
            if f.is_numeric
            else reference.category_counts(values, ref[f.name]["values"])
        )
        out[f.name] = (counts / counts.sum()).tolist()
    return out


def test_before_any_traffic_the_window_is_empty(
    snapshots: dict[str, Any], champion: dict[str, Any], champion_reference: dict[str, Any], spec: DatasetSpec
) -> None:
    snap = snapshots["empty"]
    assert {k: snap[k] for k in ("model_name", "model_version", "window", "window_rows", "min_rows", "rows_seen")} == {
        "model_name": MODEL,
        "model_version": champion["version"],
        "window": WINDOW,
        "window_rows": 0,
        "min_rows": MIN_ROWS,
        "rows_seen": 0,
    }
    assert [f["name"] for f in snap["features"]] == spec.feature_names
    for f, feature in zip(snap["features"], spec.features, strict=True):
        assert f["kind"] == ("numeric" if feature.is_numeric else "categorical")
        assert f["psi"] is None and all(b["live"] is None for b in f["bins"])
        assert [b["reference"] for b in f["bins"]] == champion_reference[f["name"]]["proportions"]


def test_bins_are_labelled_by_what_they_hold(snapshots: dict[str, Any], spec: DatasetSpec) -> None:
    bins = {f["name"]: [b["label"] for b in f["bins"]] for f in snapshots["empty"]["features"]}
    assert bins["contract_type"] == ["Month-to-month", "One year", "Two year"]
    charges = bins["monthly_charges"]
    assert all(label.startswith("<= ") for label in charges[:-1]) and charges[-1].startswith("> ")


def test_below_min_rows_the_live_shares_are_the_rows_sent_and_psi_is_null(
    snapshots: dict[str, Any], champion_reference: dict[str, Any], spec: DatasetSpec
) -> None:
    snap = snapshots["few"]
    assert (snap["window_rows"], snap["rows_seen"]) == (FEW, FEW)
    expected = expected_shares(snapshots["rows"].iloc[:FEW], champion_reference, spec)
    for f in snap["features"]:
        assert f["psi"] is None
        np.testing.assert_allclose([b["live"] for b in f["bins"]], expected[f["name"]], err_msg=f["name"])


def test_past_the_window_it_holds_the_last_rows_and_reports_their_psi(
    snapshots: dict[str, Any], champion_reference: dict[str, Any], spec: DatasetSpec, monitored: str
) -> None:
    snap = snapshots["full"]
    assert (snap["window_rows"], snap["rows_seen"]) == (WINDOW, FEW + MORE)
    last = snapshots["rows"].iloc[-WINDOW:]
    expected = expected_shares(last, champion_reference, spec)
    psi = reference.psi_frame(last, champion_reference, spec)
    for f in snap["features"]:
        np.testing.assert_allclose([b["live"] for b in f["bins"]], expected[f["name"]], err_msg=f["name"])
        assert isinstance(f["psi"], float) and f["psi"] == pytest.approx(psi[f["name"]], abs=1e-12), f["name"]
        # the same window as the drift collector on /metrics (no rows sent since)
        assert metric(monitored, f'churnguard_feature_psi{{feature="{f["name"]}"}}') == pytest.approx(f["psi"])
    assert metric(monitored, "churnguard_drift_window_rows") == WINDOW


def test_an_unknown_model_is_404_with_an_error_body(monitored: str) -> None:
    r = requests.get(f"{monitored}/v1/models/nope/monitoring", timeout=10)
    assert r.status_code == 404 and set(r.json()) == {"error"}


def test_no_model_loaded_is_503_with_an_error_body(tmp_path: Path) -> None:
    """A predictor whose registry is unreachable comes up live, never loads a model, and says so."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "CHURN_TRACING": "false"}
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=env, log=tmp_path / "predictor.log", ready_url=f"{url}/v2/health/live", timeout=90):
        r = requests.get(f"{url}/v1/models/{MODEL}/monitoring", timeout=10)
    assert r.status_code == 503 and set(r.json()) == {"error"}


# -- the model card's new parts, as served ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def info(monitored: str) -> dict[str, Any]:
    r = requests.get(f"{monitored}/v1/models/{MODEL}/info", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_info_serves_the_test_curves(info: dict[str, Any]) -> None:
    curves = info["curves"]
    assert set(curves) == {"roc", "pr", "calibration", "confusion_matrix", "baseline_roc"}
    for roc in (curves["roc"], curves["baseline_roc"]):
        assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) <= 101
        assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert len(curves["pr"]["recall"]) == len(curves["pr"]["precision"]) <= 101
    assert len(curves["calibration"]["count"]) == 10 and sum(curves["calibration"]["count"]) == info["rows"]["test"]
    assert sum(curves["confusion_matrix"].values()) == info["rows"]["test"]


def test_info_gate_is_the_eval_reports(info: dict[str, Any], champion: dict[str, Any]) -> None:
    assert info["gate"] == champion["report"]["gate"]
    assert info["gate"]["passed"] is True


def test_info_links_to_the_run_in_its_experiment_and_to_grafana(info: dict[str, Any], champion: dict[str, Any]) -> None:
    run = MlflowClient(champion["tracking_uri"]).get_run(info["run_id"])
    assert info["experiment_id"] == run.info.experiment_id
    base = UI_URL.rstrip("/")
    assert info["mlflow_run_url"] == f"{base}/#/experiments/{run.info.experiment_id}/runs/{info['run_id']}"
    assert info["mlflow_url"] == f"{base}/#/models/{MODEL}/versions/{champion['version']}"
    assert info["grafana_url"] == GRAFANA_URL


def test_grafana_url_is_null_when_unset(champion_info: dict[str, Any]) -> None:
    assert champion_info["grafana_url"] is None  # the shared predictor sets no CHURN_GRAFANA_URL
