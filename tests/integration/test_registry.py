"""Serving without MLflow's client or scikit-learn: the predictor reads the registry over MLflow's REST API and
serves the GBM (or a logistic regression) from its scorer file; a family without one (hgb) is served from its
pipeline (both against a real MLflow server)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import PYTHON, ROOT, free_port, running, serving_mlflow, train

LOAD = """
import json, sys
from predictor import champion, registry
from predictor.model import ChurnModel  # the whole serving stack imported, as `python -m predictor` does
from predictor.server import ChurnModelServer
from predictor.hot import HotRoutes
from predictor.settings import PredictorSettings

settings = PredictorSettings()
reg = registry.connect(settings)
name, version = champion.resolve(reg, settings.resolved_model_uri)
served = champion.load(reg, name, version, max_rows=1000)
rows = [p["features"] for p in served.info["presets"]]
proba = served.scorer.proba(served.decoder.v1({"instances": rows})).tolist()
heavy = sorted(m for m in ("mlflow", "sklearn", "skops", "scipy.stats") if m in sys.modules)
recorded = [p["churn_probability"] for p in served.info["presets"]]
print(json.dumps({"registry": type(reg).__name__, "scorer": type(served.scorer).__name__, "version": version,
                  "run_id": served.run_id, "proba": proba, "recorded": recorded, "imported": heavy}))
"""


def load_in_a_fresh_process(tracking_uri: str, **env: str) -> dict[str, Any]:
    import os

    full = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, **env}
    done = subprocess.run([PYTHON, "-c", LOAD], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_gbm_is_served_from_its_scorer_file_without_mlflow_or_scikit_learn(champion: dict[str, Any]) -> None:
    got = load_in_a_fresh_process(champion["tracking_uri"])
    assert got["registry"] == "RestRegistry" and got["scorer"] == "GbmScorer"
    assert got["imported"] == [], f"the serving process imported {got['imported']}"
    assert got["version"] == str(champion["version"]) and len(got["run_id"]) == 32
    assert got["proba"] == got["recorded"]  # the pipeline's probabilities, recorded by training


def test_mlflows_client_serves_the_same_scores(champion: dict[str, Any]) -> None:
    rest = load_in_a_fresh_process(champion["tracking_uri"])
    client = load_in_a_fresh_process(champion["tracking_uri"], CHURN_REGISTRY_CLIENT="mlflow")
    assert client["registry"] == "MlflowRegistry" and "mlflow" in client["imported"]
    assert client["proba"] == rest["proba"] and client["run_id"] == rest["run_id"]


@pytest.fixture(scope="module")
def hgb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A second MLflow server whose champion is a HistGradientBoosting model (a family without a scorer file)."""
    home = tmp_path_factory.mktemp("hgb-store")
    with serving_mlflow(home) as url:
        result = train(url, home / "train", env={"CHURN_MODEL_FAMILY": "hgb"})
        assert result.returncode == 0, result.stdout + result.stderr
        yield {"url": url, "home": home / "train"}


def test_a_family_without_a_scorer_file_is_served_from_its_pipeline(hgb_store: dict[str, Any]) -> None:
    got = load_in_a_fresh_process(hgb_store["url"])
    assert got["scorer"] == "HgbScorer" and "sklearn" in got["imported"]
    info = json.loads((hgb_store["home"] / "reports" / "eval_report.json").read_text())
    assert info["model_family"] == "hgb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_TRACKING_URI": hgb_store["url"], "CHURN_TRACING": "false"}
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    log = Path(hgb_store["home"]) / "predictor.log"
    with running(cmd, env=env, log=log, ready_url=f"{url}/v2/health/ready", timeout=120):
        card = requests.get(f"{url}/v1/models/churnguard/info", timeout=10).json()
        rows = [p["features"] for p in card["presets"]]
        answer = requests.post(f"{url}/v1/models/churnguard:predict", json={"instances": rows}, timeout=10)
        assert answer.status_code == 200
        served = [p["churn_probability"] for p in answer.json()["predictions"]]
        assert served == [p["churn_probability"] for p in card["presets"]] == got["proba"]
