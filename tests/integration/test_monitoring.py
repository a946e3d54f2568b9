"""The dashboard and alert rules against real data: a real Prometheus (started by monitoring/prometheus.py, the
chart's rendered rules loaded, 1 s scrapes) scrapes a real predictor while this module sends valid, invalid and
drifted traffic; then every panel's queries must return data and the drift panels must show the shift."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
import requests
import yaml

from contract.spec import DatasetSpec
from monitoring import dashboard as source
from tests.chart.render import dashboard_json, prometheus_rule_spec
from tests.support import PYTHON, ROOT, free_port, running, train_challenger
from tests.support import wait_for as wait_until

WINDOW = 500  # drift window (rows): large enough that an undrifted sample's PSI stays far below 0.1
BATCH = 50
DRIFTED = {"monthly_charges": 495.0, "tenure_months": 0}  # top of the charges range; brand-new customers
RATE_WINDOW = "30s"
PSI_WARN, PSI_ALERT = 0.1, 0.25

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian)")


@pytest.fixture(scope="module")
def drift_predictor(
    champion: dict[str, Any], spec: DatasetSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """This module's own predictor, so the drift window holds exactly the traffic sent here; with a challenger in
    shadow on every request, so that the shadow's panels have data."""
    home = tmp_path_factory.mktemp("monitoring-predictor")
    tracking = champion["tracking_uri"]
    challenger = train_challenger(tracking, home, spec.name)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_TRACKING_URI": tracking, "CHURN_DRIFT_WINDOW": str(WINDOW), "CHURN_SHADOW_SAMPLE_RATIO": "1"}
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    try:
        with running(cmd, env=env, log=home / "predictor.log", ready_url=f"{url}/v2/health/ready", timeout=90):
            quality = f"{url}/v1/models/{spec.name}/quality"
            wait_until(lambda: requests.get(quality, timeout=10).json()["challenger"], 60, "the challenger in shadow")
            assert requests.get(quality, timeout=10).json()["challenger"]["model_version"] == challenger
            yield url
    finally:  # the registry is the session's: no other module's predictor shadows this challenger
        mlflow.MlflowClient(tracking).delete_registered_model_alias(spec.name, "challenger")


@pytest.fixture(scope="module")
def prometheus(drift_predictor: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local launcher, as `make up` runs it, with the rules exactly as the chart renders them."""
    home = tmp_path_factory.mktemp("prometheus")
    rules = home / "churnguard.rules.yaml"
    rules.write_text(yaml.safe_dump(prometheus_rule_spec(), sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    target = drift_predictor.removeprefix("http://")
    cmd = [PYTHON, "-m", "monitoring.prometheus", "--target", target, "--port", str(port)]
    cmd += ["--data-dir", str(home / "data"), "--rules", str(rules), "--scrape-interval", "1s"]
    with running(cmd, log=home / "prometheus.log", ready_url=f"{url}/-/ready", timeout=60):
        yield url


def query(prometheus: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr} if at is None else {"query": expr, "time": at}
    r = requests.get(f"{prometheus}/api/v1/query", params=params, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(prometheus: str, expr: str, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := query(prometheus, expr):
            return result
        time.sleep(0.5)
    raise TimeoutError(f"no result for {expr} within {timeout:.0f} s")


def sample_rows(spec: DatasetSpec, n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of the committed data (its features only): the population the reference describes."""
    return labelled_rows(spec, n, seed)[0]


def labelled_rows(spec: DatasetSpec, n: int, seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """The same rows and their churn labels."""
    with (ROOT / "data" / "raw" / "churn.csv").open() as f:
        rows = random.Random(seed).sample(list(csv.DictReader(f)), n)
    types = {f.name: float if f.type == "float" else int for f in spec.features}
    return [{k: types[k](r[k]) for k in types} for r in rows], [int(r[spec.target.name]) for r in rows]


def v2_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": k, "shape": [1], "datatype": "FP64" if isinstance(v, float) else "INT64", "data": [v]}
            for k, v in row.items()
        ]
    }


@pytest.fixture(scope="module")
def traffic(drift_predictor: str, prometheus: str, spec: DatasetSpec) -> float:
    """Valid traffic from the reference population, client errors throughout, then a window of drifted rows; the
    time (Unix seconds) of a scrape at least two scrapes after the traffic ended."""
    url, model = drift_predictor, spec.name
    predict = f"{url}/v1/models/{model}:predict"
    session = requests.Session()

    def post(path: str, body: Any, status: int) -> None:
        r = session.post(path, json=body, timeout=10)
        assert r.status_code == status, r.text

    def client_errors() -> None:
        post(predict, {"instances": [{"age": 8}]}, 422)
        r = session.post(predict, data=b'{"instances": [', headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400, r.text
        assert session.get(f"{url}/no/such/route", timeout=10).status_code == 404

    # The served version's quality series exist at 0 from its load (increase() counts from a series' first scrape):
    # wait for Prometheus' first scrape, which comes a few seconds after it starts, before any outcome is counted.
    wait_for(prometheus, 'churnguard_quality_rows_total{source="realized"} == 0')
    normal, labels = labelled_rows(spec, WINDOW, seed=1)
    for i in range(0, WINDOW, BATCH):
        answer = session.post(predict, json={"instances": normal[i : i + BATCH]}, timeout=10)
        assert answer.status_code == 200, answer.text
        ids = [p["prediction_id"] for p in answer.json()["predictions"]]
        outcomes = [{"prediction_id": pid, "label": y} for pid, y in zip(ids, labels[i : i + BATCH], strict=True)]
        post(f"{url}/v1/models/{model}/feedback", {"outcomes": outcomes}, 200)
        post(f"{url}/v1/models/{model}/feedback", {"outcomes": outcomes[:1]}, 409)
        post(f"{url}/v2/models/{model}/infer", v2_body(normal[i]), 200)
        post(f"{url}/v1/models/{model}:explain", {"instances": [normal[i]]}, 200)
        assert session.get(f"{url}/v1/models/{model}/info", timeout=10).status_code == 200
        client_errors()
        time.sleep(0.4)
    drifted = [{**row, **DRIFTED} for row in sample_rows(spec, WINDOW, seed=2)]
    for i in range(0, WINDOW, BATCH):
        post(predict, {"instances": drifted[i : i + BATCH]}, 200)
        client_errors()
        time.sleep(0.4)
    # Prometheus has scraped the whole drifted window, and a few more samples for the rates (1 s scrapes).
    ended = time.time()
    psi = 'churnguard_feature_psi{feature="monthly_charges"}'
    (scraped,) = wait_for(prometheus, f"timestamp({psi}) > {ended + 2.5}")
    assert query(prometheus, f"{psi} > {PSI_ALERT}"), "the drifted window did not move PSI past the alert"
    return float(scraped["value"][1])


def panel_queries(spec: DatasetSpec) -> list[tuple[str, str, str]]:
    """(panel title, feature or "", PromQL) for every query of the shipped dashboard, variables filled in; the
    repeated per-feature panel once per feature, as Grafana repeats it."""
    board = json.loads(dashboard_json())
    out = []
    for panel in source.panels(board):
        for t in panel["targets"]:
            features = spec.feature_names if "$feature" in t["expr"] else [""]
            for feature in features:
                values = {"__rate_interval": RATE_WINDOW, "__range": "5m", "model_version": ".*", "feature": feature}
                out.append((panel["title"], feature, source.expand(t["expr"], values)))
    return out


def by_title(title: str) -> dict[str, Any]:
    return next(p for p in source.panels(json.loads(dashboard_json())) if p["title"] == title)


def test_prometheus_loaded_every_rule_and_evaluates_it(prometheus: str) -> None:
    expected = {r["alert"] for g in prometheus_rule_spec()["groups"] for r in g["rules"]}
    deadline = time.monotonic() + 15
    while True:
        body = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        if all(not r["lastEvaluation"].startswith("0001") for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {r["name"] for r in rules if r["type"] == "alerting"} == expected
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules if r["health"] != "ok"] == []
    assert all(not r["lastEvaluation"].startswith("0001") for r in rules)


@pytest.mark.usefixtures("traffic")
def test_every_panel_query_returns_data(prometheus: str, spec: DatasetSpec) -> None:
    queries = panel_queries(spec)
    assert len({title for title, _, _ in queries}) >= 24
    empty = [(title, feature, expr) for title, feature, expr in queries if not query(prometheus, expr)]
    assert empty == []


@pytest.mark.usefixtures("traffic")
def test_psi_panels_show_the_drifted_features_above_the_alert_threshold_and_the_others_below_warn(
    prometheus: str, spec: DatasetSpec
) -> None:
    for title in ("PSI per feature", "PSI now"):
        result = query(prometheus, by_title(title)["targets"][0]["expr"])
        psi = {r["metric"]["feature"]: float(r["value"][1]) for r in result}
        assert set(psi) == set(spec.feature_names)
        for feature, value in psi.items():
            if feature in DRIFTED:
                assert value > PSI_ALERT, (feature, psi)
            else:
                assert value < PSI_WARN, (feature, psi)


@pytest.mark.usefixtures("traffic")
def test_live_vs_reference_panel_shows_the_drifted_bins(prometheus: str) -> None:
    panel = by_title("Live vs reference: $feature")
    for feature, drifted in (("monthly_charges", max), ("tenure_months", min)):
        live, reference = (
            {
                r["metric"]["bin"]: float(r["value"][1])
                for r in query(prometheus, t["expr"].replace("$feature", feature))
            }
            for t in panel["targets"]
        )
        assert set(live) == set(reference)
        assert sum(reference.values()) == pytest.approx(1.0)
        # tenure 0 falls into the lowest bin, charges of 495 into the open-ended top one: bin labels sort in order
        top = drifted(live)
        assert top.startswith("00 <= ") if drifted is min else " > " in top
        assert live[top] == pytest.approx(1.0)
        assert reference[top] < 0.2


def test_error_ratio_panel_counts_the_client_errors(prometheus: str, traffic: float) -> None:
    expr = source.expand(by_title("Error ratio")["targets"][0]["expr"], {"__rate_interval": RATE_WINDOW})
    # read where the rate window still covers the traffic, however long the tests before this one took
    ratio = {r["metric"]["status_class"]: float(r["value"][1]) for r in query(prometheus, expr, at=traffic)}
    assert set(ratio) == {"4xx"}  # 422, 400 and 404 answers; no server errors
    assert 0.2 < ratio["4xx"] < 0.9


@pytest.mark.usefixtures("traffic")
def test_live_quality_panels_agree_with_the_predictors_quality_route(prometheus: str, drift_predictor: str) -> None:
    """Realized and estimated F1 and realized ROC AUC computed in PromQL from the counters, over a range that holds
    all the traffic, equal what the predictor computes from the same counts (contract/quality.py)."""
    panels = (
        ("Realized F1 (time range)", "realized", "f1"),
        ("Estimated F1 (time range)", "estimated", "f1"),
        ("Realized ROC AUC (time range)", "realized", "roc_auc"),
    )

    def compare() -> tuple[dict[str, Any], list[tuple[str, list[dict[str, Any]], float]]]:
        body = requests.get(f"{drift_predictor}/v1/models/churnguard/quality", timeout=10).json()
        (served,) = [v for v in body["versions"] if v["serving"]]
        values = {"__range": "1h", "model_version": served["model_version"]}
        return served, [
            (title, query(prometheus, source.expand(by_title(title)["targets"][0]["expr"], values)), served[src][key])
            for title, src, key in panels
        ]

    def agrees(results: list[tuple[str, list[dict[str, Any]], float]]) -> bool:
        return all(
            len(got) == 1 and float(got[0]["value"][1]) == pytest.approx(want, abs=0.01) for _, got, want in results
        )

    # the route and the last scrape are read at different moments: compare until they agree (at most 15 s)
    deadline = time.monotonic() + 15
    served, results = compare()
    while not agrees(results) and time.monotonic() < deadline:
        time.sleep(1)
        served, results = compare()
    assert agrees(results), results
    assert all(got[0]["metric"]["model_version"] == served["model_version"] for _, got, _ in results)
    values = {"__range": "1h", "model_version": served["model_version"]}
    assert served["realized"]["rows"] == WINDOW
    # increase() extrapolates to the range's end when it lies past the last sample, by up to half a scrape interval
    # (+8% over a short series on a busy CI box). Read at the last sample's time, and with the series' first sample at
    # 0 (initialized at load, scraped before any outcome), it counts exactly the outcomes sent.
    counter = f'churnguard_quality_rows_total{{source="realized", model_version="{served["model_version"]}"}}'
    (last,) = query(prometheus, f"max(timestamp({counter}))")
    labelled = by_title("Labelled outcomes (time range)")["targets"][0]["expr"]
    (rows,) = query(prometheus, source.expand(labelled, values), at=float(last["value"][1]))
    assert float(rows["value"][1]) == pytest.approx(WINDOW)
    feedback = source.expand(by_title("Feedback outcomes by result")["targets"][0]["expr"], {"__rate_interval": "1h"})
    results = {r["metric"]["result"]: float(r["value"][1]) for r in query(prometheus, feedback)}
    assert results["accepted"] > 0 and results["replayed"] > 0 and results["rejected"] == 0


@pytest.mark.usefixtures("traffic")
def test_shadow_panels_agree_with_the_predictors_quality_route(prometheus: str, drift_predictor: str) -> None:
    """Agreement, rows scored (the difference histogram's +Inf bucket) and the challenger's F1 beside the champion's,
    read at the last scrape: the pair's series start at 0 when the challenger is loaded, so the increases are exact."""
    titles = (
        "Shadow agreement (time range)",
        "Score difference, challenger minus champion",
        "F1 of the challenger and the champion (time range)",
    )
    exprs = [by_title(t)["targets"] for t in titles]

    def read() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        body = requests.get(f"{drift_predictor}/v1/models/churnguard/quality", timeout=10).json()
        (against,) = body["challenger"]["against"]
        versions = {v["model_version"]: v for v in body["versions"]}
        (last,) = query(prometheus, "max(timestamp(churnguard_shadow_agreement_total))")
        values = {"__range": "1h", "__rate_interval": "1h", "model_version": ".*"}
        at = float(last["value"][1])
        return (
            body,
            against | {"versions": versions},
            [[query(prometheus, source.expand(t["expr"], values), at=at) for t in targets] for targets in exprs],
        )

    def agrees(body: dict[str, Any], want: dict[str, Any], got: list[Any]) -> bool:
        (agreement,), (difference,), (realized, estimated) = got
        scored = [float(r["value"][1]) for r in difference if r["metric"]["le"] == "+Inf"]
        f1 = {
            (s, r["metric"]["model_version"]): float(r["value"][1])
            for s, rs in (("realized", realized), ("estimated", estimated))
            for r in rs
        }
        versions = want["versions"]
        return (
            len(agreement) == 1
            and agreement[0]["metric"]["challenger_version"] == body["challenger"]["model_version"]
            and float(agreement[0]["value"][1]) == pytest.approx(want["agreement"], abs=1e-9)
            and scored == [want["rows"]]
            and all(
                f1.get((s, v)) == pytest.approx(versions[v][s]["f1"], abs=0.01)
                for s in ("realized", "estimated")
                for v in (body["model_version"], body["challenger"]["model_version"])
                if versions[v][s]["f1"] is not None  # the challenger's realized: only if a shadowed row's label came
            )
        )

    deadline = time.monotonic() + 15
    body, want, got = read()
    while not agrees(body, want, got) and time.monotonic() < deadline:
        time.sleep(1)
        body, want, got = read()
    assert agrees(body, want, got), (want, got)
    assert want["rows"] >= 2 * WINDOW and 0.5 < want["agreement"] < 1  # every predict request, another model family
    print(f"shadow panels: agreement {want['agreement']:.4f} over {want['rows']:.0f} rows, as the route says")
    rows = source.expand(by_title("Shadowed rows by result")["targets"][0]["expr"], {"__rate_interval": "1h"})
    assert {r["metric"]["result"] for r in query(prometheus, rows)} == {"scored", "dropped", "incompatible"}


@pytest.mark.usefixtures("traffic")
def test_drift_alert_is_pending_for_exactly_the_drifted_features(prometheus: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        drift = {
            a["labels"]["feature"]: a["state"] for a in alerts if a["labels"]["alertname"] == "ChurnGuardFeatureDrift"
        }
        if set(drift) == set(DRIFTED) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert drift == dict.fromkeys(DRIFTED, "pending")  # `for: 15m` has not elapsed
    firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
    assert firing == []


@pytest.mark.usefixtures("traffic")
def test_dashboard_and_rules_use_only_metrics_the_predictor_exports(drift_predictor: str) -> None:
    exposed = set(re.findall(r"^([a-zA-Z_:][\w:]*)", requests.get(f"{drift_predictor}/metrics", timeout=10).text, re.M))
    exprs = [t["expr"] for p in source.panels(json.loads(dashboard_json())) for t in p["targets"]]
    exprs += [r["expr"] for g in prometheus_rule_spec()["groups"] for r in g["rules"]]
    used = set(re.findall(r"\b((?:churnguard|process|request)_[a-z_]+)\b", "\n".join(exprs)))
    assert len(used) > 20
    assert used - exposed == set()
