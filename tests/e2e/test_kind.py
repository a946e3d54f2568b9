"""Cluster end to end (kind in GitHub Actions, .github/workflows/e2e-kind.yml, after `skaffold run` and again after
`helm install`): the training Job has completed, V1 predict answers through the UI, Prometheus has loaded
ChurnGuard's alert rules and scrapes the predictor, and Grafana has loaded the dashboard. Every call goes through
`kubectl port-forward` on 127.0.0.1.

Runs only with CHURNGUARD_E2E=1 and a kube context pointing at the cluster; skipped otherwise."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

NAMESPACE = os.environ.get("CHURNGUARD_NAMESPACE", "churnguard")
RELEASE = os.environ.get("CHURNGUARD_RELEASE", "churnguard")
MONITORING_NAMESPACE = os.environ.get("CHURNGUARD_MONITORING_NAMESPACE", "monitoring")
MODEL = os.environ.get("CHURNGUARD_MODEL", "churnguard")
KPS_RELEASE = os.environ.get("CHURNGUARD_KPS_RELEASE", "kps")
CHART = Path(__file__).resolve().parents[2] / "charts" / "churnguard"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    if os.environ.get("CHURNGUARD_E2E") != "1":
        pytest.skip("cluster e2e: set CHURNGUARD_E2E=1 with a kind cluster running the chart (GitHub e2e-kind)")
    if shutil.which("kubectl") is None:
        pytest.skip("cluster e2e: kubectl is not on PATH")


def kubectl_json(*args: str) -> Any:
    out = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@contextmanager
def port_forward(namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` on a free loopback port; yields the base URL."""
    proc = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", "--address", "127.0.0.1", target, f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match:
                yield f"http://127.0.0.1:{match.group(1)}"
                return
            if not line and proc.poll() is not None:
                break
        pytest.fail(f"port-forward to {namespace}/{target} did not start")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=15) as response:
        return json.load(response)


def eventually(check: Any, timeout: float, what: str) -> Any:
    """Call `check` until it returns something truthy (sidecars and rule reloads take a while)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(5)
    pytest.fail(f"{what} within {timeout:.0f} s (last error: {last})")


def post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.load(response)


def test_training_job_completed() -> None:
    jobs = kubectl_json("-n", NAMESPACE, "get", "jobs", "-l", "app.kubernetes.io/component=training")["items"]
    assert jobs, "no training Job"
    assert any(job["status"].get("succeeded", 0) >= 1 for job in jobs), [job["status"] for job in jobs]


def test_predict_through_the_ui() -> None:
    with port_forward(NAMESPACE, f"svc/{RELEASE}-ui", 80) as ui:
        with urllib.request.urlopen(f"{ui}/", timeout=15) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        spec = get_json(f"{ui}/v1/models/{MODEL}/info")["spec"]
        row = {f["name"]: (f["values"][0] if f.get("values") else f["min"]) for f in spec["features"]}
        status, body = post_json(f"{ui}/v1/models/{MODEL}:predict", {"instances": [row, row]})
    assert status == 200
    assert len(body["predictions"]) == 2
    prediction = body["predictions"][0]
    assert prediction["churn"] in (0, 1)
    assert 0.0 <= prediction["churn_probability"] <= 1.0
    assert prediction["risk"] in ("low", "medium", "high")


def test_prometheus_scrapes_the_predictor() -> None:
    with port_forward(MONITORING_NAMESPACE, "svc/prometheus-operated", 9090) as prometheus:
        deadline = time.monotonic() + 240
        pools: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            targets = get_json(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
            pools = [(t["scrapePool"], t["health"]) for t in targets if f"/{NAMESPACE}/" in t["scrapePool"]]
            if any("predictor" in pool and health == "up" for pool, health in pools):
                break
            time.sleep(10)
        else:
            pytest.fail(f"no healthy predictor target; targets of {NAMESPACE}: {pools}")
        query = urllib.parse.urlencode({"query": f'churnguard_model_loaded{{namespace="{NAMESPACE}"}}'})
        result = get_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    assert result and all(sample["value"][1] == "1" for sample in result), result


def test_grafana_dashboard_configmap_exists() -> None:
    maps = kubectl_json("get", "configmaps", "-A", "-l", "grafana_dashboard=1")["items"]
    ours = [m for m in maps if m["metadata"]["name"] == f"{RELEASE}-dashboard"]
    assert len(ours) == 1
    json.loads(ours[0]["data"]["churnguard.json"])


def test_prometheus_has_loaded_the_alert_rules() -> None:
    shipped = (CHART / "files" / "rules" / "churnguard.rules.yaml").read_text()
    expected = set(re.findall(r"^\s*- alert: (\w+)$", shipped, flags=re.MULTILINE))
    assert len(expected) >= 9
    with port_forward(MONITORING_NAMESPACE, "svc/prometheus-operated", 9090) as prometheus:

        def loaded() -> set[str]:
            groups = get_json(f"{prometheus}/api/v1/rules?type=alert")["data"]["groups"]
            names = {r["name"] for g in groups if g["name"].startswith("churnguard.") for r in g["rules"]}
            return names if expected <= names else set()

        names = eventually(loaded, 300, f"Prometheus did not load {sorted(expected)}")
    assert expected <= names


def test_grafana_has_loaded_the_dashboard() -> None:
    uid = json.loads((CHART / "files" / "dashboards" / "churnguard.json").read_text())["uid"]
    secret = kubectl_json("-n", MONITORING_NAMESPACE, "get", "secret", f"{KPS_RELEASE}-grafana-admin")["data"]
    user, password = (base64.b64decode(secret[k]).decode() for k in ("admin-user", "admin-password"))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    with port_forward(MONITORING_NAMESPACE, f"svc/{KPS_RELEASE}-grafana", 80) as grafana:
        found = eventually(
            lambda: get_json(f"{grafana}/api/dashboards/uid/{uid}", auth), 300, f"Grafana has no dashboard {uid}"
        )
    assert found["dashboard"]["uid"] == uid
    assert found["dashboard"]["title"]
