"""Live quality end to end: two predictor processes sharing a feedback key serve generated traffic; the labels the
generator drew go back through the other replica's feedback route; realized quality (both replicas' counts
summed, as Prometheus sums them) is held against the label-free estimate on traffic without and with a covariate
shift; forged, replayed and unknown ids count nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import PYTHON, free_port, running, train, train_challenger, wait_for
from training.data import generate

MODEL = "churnguard"
KEY = "test-feedback-key-0123456789abcdef"
FEATURES = ["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets"]


@pytest.fixture(scope="module")
def replicas(champion: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two predictor processes serving the champion with the same CHURN_FEEDBACK_KEY (two pods of the chart)."""
    home = tmp_path_factory.mktemp("quality")
    env = {
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "CHURN_FEEDBACK_KEY": KEY,
        "CHURN_TRACING": "false",
        "CHURN_RELOAD_INTERVAL": "1",
        "CHURN_SHADOW_SAMPLE_RATIO": "1",
    }
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def predictor(i: int) -> Any:
        cmd = [PYTHON, "-m", "predictor", "--http_port", str(ports[i])]
        log = home / f"predictor-{i}.log"
        return running(cmd, env=env, log=log, ready_url=f"{urls[i]}/v2/health/ready", timeout=120)

    with predictor(0), predictor(1):
        yield urls


def _instances(frame: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = frame[FEATURES].to_dict("records")
    return rows


def _predict(url: str, frame: Any) -> list[dict[str, Any]]:
    r = requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": _instances(frame)}, timeout=60)
    assert r.status_code == 200, r.text
    predictions: list[dict[str, Any]] = r.json()["predictions"]
    return predictions


def _feedback(url: str, outcomes: list[tuple[str, int]]) -> requests.Response:
    body = {"outcomes": [{"prediction_id": i, "label": y} for i, y in outcomes]}
    return requests.post(f"{url}/v1/models/{MODEL}/feedback", json=body, timeout=60)


def _version_quality(url: str) -> dict[str, Any]:
    r = requests.get(f"{url}/v1/models/{MODEL}/quality", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return next(v for v in body["versions"] if v["serving"])


def _confusion(urls: list[str], source: str) -> dict[str, float]:
    """The replicas' confusion counts summed (what `sum by (cell)` over the replicas' series gives)."""
    total = dict.fromkeys(("tp", "fp", "fn", "tn"), 0.0)
    for url in urls:
        for cell, v in _version_quality(url)[source]["confusion"].items():
            total[cell] += v
    return total


def _f1(c: dict[str, float]) -> float:
    return 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"])


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


def _serve_and_label(urls: list[str], rows: int, seed: int, shift: float) -> None:
    """Traffic in 500-row requests alternating between the replicas; each answer's labels go to the other one."""
    frame = generate(rows, seed, shift=shift)
    for n, start in enumerate(range(0, rows, 500)):
        part = frame.iloc[start : start + 500]
        predictions = _predict(urls[n % 2], part)
        labelled = list(zip([p["prediction_id"] for p in predictions], part["churn"].tolist(), strict=True))
        r = _feedback(urls[(n + 1) % 2], labelled)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == len(part)


def _metric_sum(urls: list[str], name: str, **labels: str) -> float:
    total = 0.0
    for url in urls:
        text = requests.get(f"{url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
    return total


def test_an_id_is_counted_by_the_replica_that_did_not_issue_it_and_only_once(replicas: list[str]) -> None:
    a, b = replicas
    pred = _predict(a, generate(3, 99))
    ids = [p["prediction_id"] for p in pred]
    assert len(set(ids)) == 3
    before_a = _version_quality(a)["realized"]["rows"]
    before_b = _version_quality(b)["realized"]["rows"]
    r = _feedback(b, [(ids[0], 1), (ids[1], 0)])
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    assert _version_quality(b)["realized"]["rows"] == before_b + 2
    assert _version_quality(a)["realized"]["rows"] == before_a
    # a replay to the same replica, alone or beside a fresh id, counts nothing
    replay = _feedback(b, [(ids[0], 1)])
    assert replay.status_code == 409
    assert replay.json()["details"][0]["field"] == "outcomes.0.prediction_id"
    mixed = _feedback(b, [(ids[2], 1), (ids[1], 0)])
    assert mixed.status_code == 409
    forged_id = ids[2][:-2] + ("AA" if ids[2][-2:] != "AA" else "BA")
    forged = _feedback(b, [(ids[2], 1), (forged_id, 0)])
    assert forged.status_code == 422
    detail = forged.json()["details"][0]
    assert detail["field"] == "outcomes.1.prediction_id" and "forged" in detail["rule"]
    unknown = _feedback(a, [("0" * 60, 1), ("hello", 0)])
    assert unknown.status_code == 422 and unknown.json()["error_count"] == 2
    assert _version_quality(b)["realized"]["rows"] == before_b + 2
    assert _version_quality(a)["realized"]["rows"] == before_a
    assert _feedback(a, [(ids[2], 1)]).status_code == 200  # the untouched id is still good
    v2 = requests.post(
        f"{a}/v2/models/{MODEL}/infer",
        json={
            "inputs": [
                {"name": "age", "shape": [1], "datatype": "INT64", "data": [40]},
                {"name": "tenure_months", "shape": [1], "datatype": "INT64", "data": [3]},
                {"name": "monthly_charges", "shape": [1], "datatype": "FP64", "data": [90.0]},
                {"name": "contract_type", "shape": [1], "datatype": "INT64", "data": [0]},
                {"name": "num_tickets", "shape": [1], "datatype": "INT64", "data": [4]},
            ]
        },
        timeout=10,
    )
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
    assert _feedback(b, [(outputs["prediction_id"][0], 1)]).status_code == 200


def test_estimated_quality_tracks_realized_quality_with_and_without_shift(replicas: list[str]) -> None:
    realized0, estimated0 = _confusion(replicas, "realized"), _confusion(replicas, "estimated")
    _serve_and_label(replicas, 10_000, seed=101, shift=0.0)
    realized1, estimated1 = _confusion(replicas, "realized"), _confusion(replicas, "estimated")
    _serve_and_label(replicas, 10_000, seed=202, shift=1.0)
    realized2, estimated2 = _confusion(replicas, "realized"), _confusion(replicas, "estimated")

    f1 = {
        "no shift": (_f1(_delta(realized1, realized0)), _f1(_delta(estimated1, estimated0))),
        "shift": (_f1(_delta(realized2, realized1)), _f1(_delta(estimated2, estimated1))),
    }
    for name, (real, est) in f1.items():
        print(f"{name}: realized F1 {real:.4f}, estimated F1 {est:.4f}, difference {est - real:+.4f}")
    (real0, est0), (real1, est1) = f1["no shift"], f1["shift"]
    assert abs(est0 - real0) <= 0.03
    moved_real, moved_est = real1 - real0, est1 - est0
    assert abs(moved_real) > 0.03, "the shift should change realized F1 measurably"
    assert moved_est * moved_real > 0 and abs(moved_est - moved_real) <= 0.03

    # the Prometheus series of both replicas add up to what their quality routes report
    for source, counts in (("realized", realized2), ("estimated", estimated2)):
        for cell in ("tp", "fp", "fn", "tn"):
            series = _metric_sum(
                replicas,
                "churnguard_quality_confusion_total",
                source=source,
                cell=cell,
                model_version=_version(replicas),
            )
            assert series == pytest.approx(counts[cell], rel=1e-9)
    quality = _version_quality(replicas[0])
    assert quality["calibration"]["live_ece"] is not None and quality["calibration"]["holds"] is True
    assert quality["calibration"]["test_ece"] is not None


def _version(urls: list[str]) -> str:
    version: str = _version_quality(urls[0])["model_version"]
    return version


def _quality(url: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{url}/v1/models/{MODEL}/quality", timeout=10).json()
    return body


def _serving(urls: list[str], version: str) -> None:
    for url in urls:
        wait_for(lambda u=url: _quality(u)["model_version"] == version, 60, f"version {version} served")


def test_a_challenger_in_shadow_is_scored_on_the_same_rows_and_labels_then_promoted(
    replicas: list[str], champion: dict[str, Any], tmp_path: Path
) -> None:
    """Both replicas score every request with the challenger too (sample ratio 1), off the answer; `training
    promote` refuses it on too few shadow rows, then promotes it, and `training rollback` brings the champion back."""
    client = mlflow.MlflowClient(champion["tracking_uri"])
    champion_version = client.get_model_version_by_alias(MODEL, "champion").version
    latest = train_challenger(champion["tracking_uri"], tmp_path, MODEL)
    try:
        for url in replicas:
            wait_for(lambda u=url: _quality(u)["challenger"], 60, "the challenger in shadow")
        frame = generate(2000, 303)
        labelled = 0
        for n, start in enumerate(range(0, 2000, 500)):
            part = frame.iloc[start : start + 500]
            url = replicas[n % 2]
            predictions = _predict(url, part)
            r = _feedback(
                url, list(zip([p["prediction_id"] for p in predictions], part["churn"].tolist(), strict=True))
            )
            assert r.status_code == 200, r.text
            labelled += r.json()["challenger_scored"]

        def shadowed() -> float:
            return sum(
                a["rows"]
                for u in replicas
                for a in _quality(u)["challenger"]["against"]
                if a["champion_version"] == champion_version
            )

        wait_for(lambda: shadowed() >= 2000, 60, "every served row scored by the challenger")
        assert shadowed() == 2000
        # labels arrive after the shadow scored most rows; those it had not yet scored are counted for the champion only
        assert 0 < labelled <= 2000
        challenger_rows = {"estimated": 0.0, "realized": 0.0}
        for url in replicas:
            body = _quality(url)
            (against,) = [a for a in body["challenger"]["against"] if a["champion_version"] == champion_version]
            assert 0.5 < against["agreement"] <= 1.0
            (version,) = [v for v in body["versions"] if v["model_version"] == str(latest)]
            assert not version["serving"]
            for source in challenger_rows:
                challenger_rows[source] += version[source]["rows"]
        assert challenger_rows == {"estimated": 2000.0, "realized": float(labelled)}
        assert (
            _metric_sum(replicas, "churnguard_shadow_rows_total", result="scored", challenger_version=str(latest))
            == 2000
        )
        same = _metric_sum(
            replicas, "churnguard_shadow_agreement_total", verdict="same", challenger_version=str(latest)
        )
        different = _metric_sum(
            replicas, "churnguard_shadow_agreement_total", verdict="different", challenger_version=str(latest)
        )
        assert same + different == 2000
        print(f"shadow: {same / 2000:.3f} agreement, {labelled} labelled rows paired with the challenger's scores")
        # the evidence is summed over both replicas; too few shadow rows refuse it with the rule named
        predictors = [arg for url in replicas for arg in ("--predictor", url)]
        refused = train(champion["tracking_uri"], tmp_path, "promote", *predictors, "--min-shadow-rows", "5000")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "FAIL: 2,000 shadow rows vs minimum 5,000" in refused.stdout and "champion unchanged" in refused.stderr
        assert client.get_model_version_by_alias(MODEL, "champion").version == champion_version
        promoted = train(
            champion["tracking_uri"],
            tmp_path,
            "promote",
            "--from",
            "challenger",
            *predictors,
            "--min-shadow-rows",
            "2000",
            "--max-drop",
            "1",
        )
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        print(promoted.stdout)
        assert f"champion moved from version {champion_version} to {latest}" in promoted.stdout
        assert client.get_model_version_by_alias(MODEL, "champion").version == latest
        assert registry_alias(client, "challenger") is None
        _serving(replicas, latest)
        for url in replicas:
            wait_for(lambda u=url: _quality(u)["challenger"] is None, 60, "the shadow ended with the promotion")
    finally:
        if registry_alias(client, "challenger") is not None:
            client.delete_registered_model_alias(MODEL, "challenger")
        if client.get_model_version_by_alias(MODEL, "champion").version != champion_version:
            back = train(champion["tracking_uri"], tmp_path, "rollback", "--to", champion_version)
            assert back.returncode == 0, back.stdout + back.stderr
    # the rest of the session's tests expect the session champion served
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_version
    _serving(replicas, champion_version)
    for url in replicas:
        wait_for(lambda u=url: _quality(u)["challenger"] is None, 60, "no challenger left")


def registry_alias(client: mlflow.MlflowClient, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(MODEL, alias).version)
    except mlflow.exceptions.MlflowException:
        return None
