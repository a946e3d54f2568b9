"""Shared fixtures. Session-scoped: one real MLflow server on loopback, a champion trained into it by the
pipeline from the committed data, and one predictor process serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from contract.spec import DatasetSpec
from tests.support import PYTHON, ROOT, free_port, running, serving_mlflow, train

SPEC_PATH = ROOT / "data" / "churn.spec.yaml"
DATA_PATH = ROOT / "data" / "raw" / "churn.csv"


@pytest.fixture(scope="session")
def spec() -> DatasetSpec:
    return DatasetSpec.load(SPEC_PATH)


@pytest.fixture(scope="session")
def test_output() -> Path:
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (sqlite + local artifacts, --serve-artifacts) on 127.0.0.1."""
    with serving_mlflow(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="session")
def champion(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The committed data trained, gated and registered by `python -m training run` into the MLflow server."""
    home = tmp_path_factory.mktemp("train-home")
    result = train(mlflow_server, home)
    assert result.returncode == 0, result.stdout + result.stderr
    import json

    report = json.loads((home / "reports" / "eval_report.json").read_text())
    return {"tracking_uri": mlflow_server, "home": home, "report": report, "version": report["model_version"]}


@pytest.fixture(scope="session")
def predictor_url(champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real predictor process (`python -m predictor`) serving the champion, on 127.0.0.1."""
    home = tmp_path_factory.mktemp("predictor")
    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "CHURN_INFERENCE_LOG_DIR": str(home / "inference-log"),
        "CHURN_RELOAD_INTERVAL": "1",
        "CHURN_MLFLOW_UI_URL": champion["tracking_uri"],
    }
    url = f"http://127.0.0.1:{port}"
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=env, log=home / "predictor.log", ready_url=f"{url}/v2/health/ready", timeout=90):
        yield url


@pytest.fixture(scope="session")
def champion_info(predictor_url: str) -> dict[str, Any]:
    r = requests.get(f"{predictor_url}/v1/models/churnguard/info", timeout=10)
    r.raise_for_status()
    info: dict[str, Any] = r.json()
    return info


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under tests/unit are `unit`, under tests/integration `integration`, unless marked otherwise."""
    for item in items:
        path = str(item.fspath)
        if not any(item.iter_markers(name=m) for m in ("unit", "integration", "e2e")):
            if f"{os.sep}unit{os.sep}" in path:
                item.add_marker(pytest.mark.unit)
            elif f"{os.sep}integration{os.sep}" in path:
                item.add_marker(pytest.mark.integration)
